"""Only integrators that sign their requests may use the REST channel when it is configured.

The channel's blueprint runs in a real Sanic server on a free port, with an
agent that records the messages and holds one conversation's staff reply;
requests are made with aiohttp, signed with `signed_headers` as an
integrator would.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from rasa.shared.core.events import BotUttered
from sanic import Sanic
from yarl import URL

from bot.profile import MissingSharedSetting
from bot.rasa_ext.channels.rest import CheckedRestInput
from bot.rasa_ext.channels.rest_auth import (
    MemoryNonces,
    RestAuthenticator,
    parse_integrators,
    signed_headers,
)

SECRET = "s" * 40
WEBHOOK = "/webhooks/rest/webhook"


def _data(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


@dataclass
class Agent:
    """Rasa's agent as the channel uses it: handles messages, holds one tracker."""

    received: list[UserMessage] = field(default_factory=list)

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        await message.output_channel.send_text_message(message.sender_id, "收到")

    async def retrieve(self, sender_id: str) -> Any:
        if sender_id != "bank-app-1":
            return None
        staff = BotUttered("您好，我是李专员", metadata={"staff": "李专员"}, timestamp=100.0)
        return SimpleNamespace(events=[staff])


@dataclass
class Server:
    url: str
    agent: Agent
    session: aiohttp.ClientSession

    async def post(
        self, body: Any, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        async with self.session.post(
            self.url + WEBHOOK,
            data=_data(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response:
            await response.read()
            return response

    async def signed_post(self, body: Any, **options: Any) -> aiohttp.ClientResponse:
        data = _data(body)
        headers = signed_headers("bank-app", SECRET, "POST", WEBHOOK, data, **options)
        async with self.session.post(
            self.url + WEBHOOK, data=data, headers={"Content-Type": "application/json", **headers}
        ) as response:
            await response.read()
            return response


async def _serve(auth: RestAuthenticator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(Sanic, "test_mode", True)
    app = Sanic(f"rest_test_{uuid.uuid4().hex[:8]}")
    agent = Agent()
    app.ctx.agent = SimpleNamespace(handle_message=agent.handle_message, tracker_store=agent)
    register([CheckedRestInput(auth)], app, "/webhooks/")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    try:
        async with aiohttp.ClientSession() as session:
            yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", agent, session)
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def signed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    """The channel with one integrator, `bank-app`."""
    auth = RestAuthenticator({"bank-app": SECRET.encode()}, MemoryNonces())
    async for server in _serve(auth, monkeypatch):
        yield server


@pytest.fixture
async def open_channel(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    """The development profile's channel without integrators."""
    async for server in _serve(RestAuthenticator({}, MemoryNonces()), monkeypatch):
        yield server


BODY = {"sender": "bank-app-1", "message": "我想协商还款"}


async def test_a_signed_request_is_answered(signed: Server) -> None:
    response = await signed.signed_post(BODY)
    assert response.status == 200
    [message] = signed.agent.received
    assert (message.sender_id, message.text, message.input_channel) == (
        "bank-app-1",
        "我想协商还款",
        "rest",
    )


async def test_an_unsigned_request_is_refused(signed: Server) -> None:
    response = await signed.post(BODY)
    assert response.status == 401
    assert "X-Signature" in await response.text()
    assert signed.agent.received == []


async def test_a_wrong_signature_is_refused(signed: Server) -> None:
    data = _data(BODY)
    headers = signed_headers("bank-app", SECRET, "POST", WEBHOOK, data)
    # The body changed after signing: another sender.
    tampered = {**BODY, "sender": "someone-else"}
    assert (await signed.post(tampered, headers)).status == 401
    # Another integrator's name, or a secret that is not the integrator's.
    other = signed_headers("other-app", SECRET, "POST", WEBHOOK, data)
    assert (await signed.post(BODY, other)).status == 401
    wrong = signed_headers("bank-app", "x" * 40, "POST", WEBHOOK, data)
    assert (await signed.post(BODY, wrong)).status == 401
    # Malformed headers are refused too, never an error.
    for name, value in [
        ("X-Timestamp", "yesterday"),
        ("X-Nonce", "short"),
        ("X-Signature", "签" * 64),
    ]:
        assert (await signed.post(BODY, {**headers, name: value})).status == 401
    assert signed.agent.received == []


async def test_a_stale_request_is_refused(signed: Server) -> None:
    stale = await signed.signed_post(BODY, now=time.time() - 301)
    early = await signed.signed_post(BODY, now=time.time() + 301)
    assert (stale.status, early.status) == (401, 401)
    assert (await signed.signed_post(BODY, now=time.time() - 200)).status == 200


async def test_a_replayed_request_is_refused(signed: Server) -> None:
    data = _data(BODY)
    headers = signed_headers("bank-app", SECRET, "POST", WEBHOOK, data)
    assert (await signed.post(BODY, headers)).status == 200
    replayed = await signed.post(BODY, headers)
    assert replayed.status == 401
    assert "nonce" in await replayed.text()
    assert len(signed.agent.received) == 1


async def test_staff_messages_need_a_signature_over_the_query(signed: Server) -> None:
    path = "/webhooks/rest/staff_messages?sender=bank-app-1&after=0"
    url = URL(signed.url + path, encoded=True)
    async with signed.session.get(url) as response:
        assert response.status == 401
    headers = signed_headers("bank-app", SECRET, "GET", path)
    async with signed.session.get(url, headers=headers) as response:
        assert response.status == 200
        [reply] = await response.json()
        assert (reply["text"], reply["staff"]) == ("您好，我是李专员", "李专员")
    # The same signature for another conversation's messages does not hold.
    other = URL(signed.url + path.replace("bank-app-1", "bank-app-2"), encoded=True)
    fresh = signed_headers("bank-app", SECRET, "GET", path)
    async with signed.session.get(other, headers=fresh) as response:
        assert response.status == 401


async def test_without_integrators_the_channel_is_open(open_channel: Server) -> None:
    assert (await open_channel.post(BODY)).status == 200


def test_the_scale_profile_will_not_start_an_open_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.delenv("REST_INTEGRATORS", raising=False)
    with pytest.raises(MissingSharedSetting, match="REST_INTEGRATORS"):
        CheckedRestInput()
    monkeypatch.setenv("REST_INTEGRATORS", f"bank-app:{SECRET}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert CheckedRestInput().auth.required


def test_without_integrators_outside_the_scale_profile_the_channel_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    monkeypatch.delenv("REST_INTEGRATORS", raising=False)
    assert not CheckedRestInput().auth.required
    monkeypatch.setenv("REST_INTEGRATORS", f"bank-app:{SECRET}")
    assert CheckedRestInput().auth.required


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("bank-app", "at least 32"),
        (f"bank-app:{'s' * 31}", "at least 32"),
        (f"Bank App:{SECRET}", "name:secret"),
        (f"a:{SECRET},a:{SECRET}", "twice"),
    ],
)
def test_bad_integrator_settings_are_named(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_integrators(value)


def test_integrator_settings_are_read() -> None:
    assert parse_integrators(f"bank-app:{SECRET}, collections_2:{'t' * 32}") == {
        "bank-app": SECRET.encode(),
        "collections_2": b"t" * 32,
    }
