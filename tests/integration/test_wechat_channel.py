"""The WeChat channel's webhook, served by Sanic with a stub in place of Rasa.

The channel's blueprint is registered on a Sanic app the way Rasa registers
input channels; WeChat is played by `tests.support.wechat_fake.WeChatClient` and
the WeChat server API by `FakeWeChatApi`. The shared store is the local Redis
(database 9 unless `TEST_REDIS_URL` says otherwise; keys are per test: each
test has its own app id), else the in-process fallback. The scale profile's
tests (`BOT_PROFILE=scale`) and those of replicas need the local Redis and fail
without it; `BOT_PROFILE` is unset for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.rasa_ext.channels.wechat import (
    WeChatConfig,
    WeChatEndpoint,
    WeChatInput,
    openid_of,
    sender_id,
)
from bot.rasa_ext.channels.wechat_api import WeChatApi
from bot.rasa_ext.channels.wechat_config import last_message_key, script_key
from bot.rasa_ext.channels.wechat_replay import NONCE_MARGIN, nonce_key
from bot.rasa_ext.channels.wechat_store import SharedStore, SharedStoreUnavailable
from bot.rasa_ext.channels.wechat_text import (
    MAX_TEXT_BYTES,
    choose,
    parse_choice,
    render_message,
    split_text,
    utf8_size,
)
from tests.support.wechat_fake import (
    AES_KEY,
    APP_SECRET,
    TOKEN,
    FakeWeChatApi,
    WeChatClient,
    event,
    http_transport,
    image_message,
    location_message,
    new_openid,
    text_message,
    voice_message,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
UNREACHABLE = "redis://127.0.0.1:1/0"
UNSUPPORTED = "抱歉，我暂时只能读懂文字和语音消息，请直接打字告诉我您的问题。"
PLAN_BUTTONS = [
    {"title": "方案1", "payload": '/choose_plan{"plan_index": 1}'},
    {"title": "方案2", "payload": '/choose_plan{"plan_index": 2}'},
]

_apps = itertools.count(1)


@pytest.fixture(scope="module")
def domain_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("domain") / "domain.yml"
    path.write_text(
        'version: "3.1"\nresponses:\n'
        f'  utter_wechat_unsupported:\n    - text: "{UNSUPPORTED}"\n'
        '  utter_greet:\n    - text: "您好，我是自动回复的智能助手。"\n',
        encoding="utf-8",
    )
    return str(path)


Replier = Callable[[str], list[dict[str, Any]]]


def echo(text: str) -> list[dict[str, Any]]:
    return [{"text": f"收到：{text}"}]


@dataclass
class StubRasa:
    """In place of Rasa's `on_new_message`: records the messages and answers them."""

    reply: Replier = echo
    delay: float = 0.0
    messages: list[UserMessage] = field(default_factory=list)

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        await asyncio.sleep(self.delay)
        for answer in self.reply(message.text or ""):
            await message.output_channel.send_response(message.sender_id, dict(answer))

    @property
    def texts(self) -> list[str]:
        return [m.text or "" for m in self.messages]


@dataclass
class Harness:
    channel: WeChatInput
    rasa: StubRasa
    fake: FakeWeChatApi
    client: WeChatClient
    url: str
    session: aiohttp.ClientSession

    @property
    def endpoint(self) -> WeChatEndpoint:
        assert self.channel.endpoint is not None
        return self.channel.endpoint


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start(domain_path: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Start]:
    """Start the channel in a Sanic server: `await start(safe=..., delay=..., **settings)`.

    With `replica_of`, another replica of that harness's channel: same account,
    same fake WeChat, same settings (`settings` may still change some).
    """
    # Sanic rewrites its request handling at each app's start-up; in test mode it
    # can do so for more than one app in a process.
    monkeypatch.setattr(Sanic, "test_mode", True)
    # The default profile unless a test sets it (before `start`).
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def _start(
        *,
        safe: bool = True,
        reply: Replier = echo,
        delay: float = 0.0,
        replica_of: Harness | None = None,
        **settings: Any,
    ) -> Harness:
        if replica_of is None:
            fake = FakeWeChatApi(app_id=f"wx{uuid.uuid4().hex[:16]}")
            base = await fake.start()
            cleanups.append(fake.stop)
            config = WeChatConfig(
                token=TOKEN,
                app_id=fake.app_id,
                app_secret=APP_SECRET,
                aes_key=AES_KEY if safe else "",
                api_base=base,
                redis_url=REDIS_URL,
                domain_path=domain_path,
            )
        else:
            fake, config = replica_of.fake, replica_of.channel.config
        config = replace(config, **settings)
        channel = WeChatInput(config)
        rasa = StubRasa(reply=reply, delay=delay)
        app = Sanic(f"wechat_unit_{next(_apps)}")
        app.config.ACCESS_LOG = False
        # As Rasa's `register` does, with the stub in place of the agent.
        app.blueprint(channel.blueprint(rasa), url_prefix="/webhooks/wechat")
        app.ctx.input_channels = [channel]
        # A socket of its own on a free port (Sanic takes port 0 for its default, 8000).
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        server = await app.create_server(
            sock=listening, return_asyncio_server=True, access_log=False
        )
        assert server is not None
        await server.startup()
        port = getattr(server.server, "sockets", [])[0].getsockname()[1]
        session = aiohttp.ClientSession()
        url = f"http://127.0.0.1:{port}/webhooks/wechat/"

        async def stop() -> None:
            if channel.endpoint is not None:
                await channel.endpoint.drain()
            await session.close()
            server.close()
            await server.wait_closed()
            await channel.api.close()
            with contextlib.suppress(SharedStoreUnavailable):
                await channel.store.delete(channel.api.token_key)
            await channel.store.close()

        cleanups.append(stop)
        client = WeChatClient(
            http_transport(session, url),
            app_id=fake.app_id,
            aes_key=config.aes_key or None,
        )
        return Harness(channel, rasa, fake, client, url, session)

    yield _start
    for cleanup in reversed(cleanups):
        await cleanup()


# --- URL verification and signatures ------------------------------------------------------


async def test_url_verification_echoes_echostr(start: Start) -> None:
    wechat = await start()
    reply = await wechat.client.verify("echo-1234")
    assert (reply.status, reply.body) == (200, "echo-1234")


async def test_url_verification_with_a_bad_or_missing_signature_is_refused(start: Start) -> None:
    wechat = await start()
    query = wechat.client.signed_query()
    forged = {**query, "signature": "0" * 40}
    assert (await wechat.client.verify("x", forged)).status == 403
    missing = {k: v for k, v in query.items() if k != "signature"}
    assert (await wechat.client.verify("x", missing)).status == 403


async def test_without_a_token_the_channel_answers_503(start: Start) -> None:
    wechat = await start(token="")
    reply = await wechat.client.verify("x")
    assert reply.status == 503
    assert "WECHAT_TOKEN" in reply.body
    assert (await wechat.client.push(text_message(new_openid(), "你好"))).status == 503
    assert wechat.rasa.messages == []


async def test_a_forged_signature_touches_no_conversation(start: Start) -> None:
    wechat = await start(safe=False)
    query = {**wechat.client.signed_query(), "signature": "f" * 40}
    reply = await wechat.client.push(text_message(new_openid(), "你好"), query)
    assert reply.status == 403
    assert wechat.rasa.messages == []


async def test_a_stale_timestamp_is_refused(start: Start) -> None:
    wechat = await start()
    query = wechat.client.signed_query(timestamp=int(time.time()) - 301)
    reply = await wechat.client.push(text_message(new_openid(), "你好"), query)
    assert reply.status == 403
    assert "timestamp" in reply.body
    assert wechat.rasa.messages == []


async def test_a_forged_msg_signature_in_safe_mode_is_refused(start: Start) -> None:
    wechat = await start()
    query, body = wechat.client.encode(text_message(new_openid(), "你好"))
    query["msg_signature"] = "0" * 40
    assert (await wechat.client.post_raw(query, body)).status == 403
    assert wechat.rasa.messages == []


async def test_safe_mode_refuses_plain_messages(start: Start) -> None:
    wechat = await start()
    plain = WeChatClient(wechat.client.transport, app_id=wechat.fake.app_id, aes_key=None)
    assert (await plain.push(text_message(new_openid(), "你好"))).status == 400
    assert wechat.rasa.messages == []


async def test_a_future_timestamp_is_refused(start: Start) -> None:
    wechat = await start()
    query = wechat.client.signed_query(timestamp=int(time.time()) + 301)
    reply = await wechat.client.push(text_message(new_openid(), "你好"), query)
    assert reply.status == 403
    assert "timestamp" in reply.body
    # Within the window either way is fine (clocks differ a little).
    query = wechat.client.signed_query(timestamp=int(time.time()) + 60)
    assert (await wechat.client.push(text_message(new_openid(), "你好"), query)).status == 200
    assert wechat.rasa.texts == ["你好"]


async def test_a_timestamp_that_is_not_plain_digits_is_refused(start: Start) -> None:
    wechat = await start(safe=False)
    client = wechat.client
    for stamp in (f" {int(time.time())}", f"+{int(time.time())}", "1_7" + "0" * 8):
        nonce = "12345"
        query = {"signature": client.signature(stamp, nonce), "timestamp": stamp, "nonce": nonce}
        reply = await client.push(text_message(new_openid(), "你好"), query)
        assert (reply.status, reply.body) == (403, "invalid timestamp")
    assert wechat.rasa.messages == []


# --- replays ----------------------------------------------------------------------------------


@pytest.mark.parametrize("safe", [True, False], ids=["safe", "plain"])
async def test_a_replayed_request_runs_no_turn_and_discloses_no_answer(
    start: Start, safe: bool
) -> None:
    wechat = await start(safe=safe)
    query, body = wechat.client.encode(text_message(new_openid(), "我的欠款还有多少"))
    first = await wechat.client.post_raw(query, body)
    assert first.content == "收到：我的欠款还有多少"
    # The very same request again: no second turn, and not the answer either.
    for _ in range(2):
        again = await wechat.client.post_raw(query, body)
        assert (again.status, again.body, again.content) == (200, "success", None)
    assert wechat.rasa.texts == ["我的欠款还有多少"]


async def test_a_replayed_query_with_another_message_is_refused(start: Start) -> None:
    """Plain mode: the signature does not cover the body, the nonce guard does."""
    wechat = await start(safe=False)
    query = wechat.client.signed_query()
    assert (await wechat.client.push(text_message(new_openid(), "你好"), query)).status == 200
    victim = new_openid()
    for forged in (
        text_message(victim, "我同意每月还款 5000 元"),
        event(victim, "subscribe"),
        image_message(victim),
    ):
        reply = await wechat.client.push(forged, query)
        assert reply.status == 403
        assert "used already" in reply.body
    assert wechat.rasa.texts == ["你好"]
    # A fresh request, signed with its own nonce, is accepted as always.
    fresh = await wechat.client.push(text_message(victim, "你好"))
    assert fresh.content == "收到：你好"
    assert wechat.rasa.texts == ["你好", "你好"]


async def test_the_query_of_a_message_that_ran_no_turn_cannot_carry_one(start: Start) -> None:
    wechat = await start(safe=False)
    query = wechat.client.signed_query()
    assert (await wechat.client.push(image_message(new_openid()), query)).content == UNSUPPORTED
    assert (await wechat.client.push(text_message(new_openid(), "你好"), query)).status == 403
    assert wechat.rasa.messages == []


async def test_a_replay_in_safe_mode_cannot_swap_the_message(start: Start) -> None:
    wechat = await start()
    query, body = wechat.client.encode(text_message(new_openid(), "你好"))
    assert (await wechat.client.post_raw(query, body)).status == 200
    _, other = wechat.client.encode(text_message(new_openid(), "我同意"))
    assert (await wechat.client.post_raw(query, other)).status == 403
    assert wechat.rasa.texts == ["你好"]


async def test_wechat_retries_are_still_one_turn_with_the_answer(start: Start) -> None:
    """WeChat's retries are requests of their own (fresh timestamp and nonce) and get
    the first delivery's answer; one under the first's nonce would get `success`."""
    wechat = await start(delay=0.5)
    message = text_message(new_openid(), "罚息怎么算")
    query, body = wechat.client.encode(message)
    first = asyncio.create_task(wechat.client.post_raw(query, body))
    await asyncio.sleep(0.1)
    retry = await wechat.client.push(message)
    assert retry.content == "收到：罚息怎么算"
    assert (await first).content == "收到：罚息怎么算"
    same_nonce = await wechat.client.post_raw(query, body)
    assert (same_nonce.status, same_nonce.body) == (200, "success")
    assert (await wechat.client.push(message)).content == "收到：罚息怎么算"
    assert wechat.rasa.texts == ["罚息怎么算"]
    assert wechat.fake.all_sent() == []


@pytest.mark.parametrize(
    ("safe", "profile"), [(True, "scale"), (False, "")], ids=["scale-safe", "default-plain"]
)
async def test_replicas_sharing_redis_refuse_a_replay_on_the_other(
    start: Start, monkeypatch: pytest.MonkeyPatch, safe: bool, profile: str
) -> None:
    if profile:
        monkeypatch.setenv("BOT_PROFILE", profile)
    one = await start(safe=safe)
    other = await start(replica_of=one)
    assert other.channel.config.app_id == one.channel.config.app_id
    query, body = one.client.encode(text_message(new_openid(), "我想申请分期"))
    assert (await one.client.post_raw(query, body)).content == "收到：我想申请分期"
    # The same request, handed to the other replica by the load balancer.
    again = await other.client.post_raw(query, body)
    assert (again.status, again.body) == (200, "success")
    _, swapped = other.client.encode(text_message(new_openid(), "我同意"))
    assert (await other.client.post_raw(query, swapped)).status == 403
    assert one.rasa.texts == ["我想申请分期"]
    assert other.rasa.messages == []
    assert one.channel.store.uses_redis and other.channel.store.uses_redis
    # The claim lasts while the timestamp is in the window, and the margin.
    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        ttl = await redis.ttl(nonce_key(one.channel.config.app_id, query["signature"]))
    finally:
        await redis.close()
    assert 300 <= ttl <= 300 + NONCE_MARGIN + 1
    # A fresh request on the other replica is accepted.
    assert (await other.client.push(text_message(new_openid(), "你好"))).content == "收到：你好"


async def test_without_redis_one_process_still_refuses_replays(start: Start) -> None:
    wechat = await start(safe=False, redis_url=UNREACHABLE)
    query = wechat.client.signed_query()
    assert (await wechat.client.push(text_message(new_openid(), "你好"), query)).status == 200
    assert (await wechat.client.push(text_message(new_openid(), "我同意"), query)).status == 403
    assert wechat.rasa.texts == ["你好"]
    assert not wechat.channel.store.uses_redis


async def test_scale_profile_accepts_a_request_refused_during_an_outage_once_redis_is_back(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refused request claimed nothing: WeChat's next delivery is accepted."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    wechat = await start(redis_url=UNREACHABLE)
    query, body = wechat.client.encode(text_message(new_openid(), "你好"))
    assert (await wechat.client.post_raw(query, body)).status == 503
    wechat.channel.store.url = REDIS_URL
    assert (await wechat.client.post_raw(query, body)).content == "收到：你好"
    assert (await wechat.client.post_raw(query, body)).body == "success"
    assert wechat.rasa.texts == ["你好"]


# --- messages -------------------------------------------------------------------------------


async def test_safe_mode_round_trip(start: Start) -> None:
    wechat = await start()
    openid = new_openid()
    reply = await wechat.client.push(text_message(openid, "逾期会影响征信吗"))
    assert reply.status == 200
    assert reply.content == "收到：逾期会影响征信吗"
    assert reply.fields["ToUserName"] == openid
    [message] = wechat.rasa.messages
    assert message.sender_id == f"wechat:{openid}"
    assert message.input_channel == "wechat"


async def test_plain_mode_round_trip(start: Start) -> None:
    wechat = await start(safe=False)
    reply = await wechat.client.push(text_message(new_openid(), "你好"))
    assert reply.content == "收到：你好"
    assert "<Encrypt>" not in reply.body


async def test_several_messages_of_a_turn_are_one_passive_reply(start: Start) -> None:
    wechat = await start(reply=lambda _: [{"text": "第一条"}, {"text": "第二条"}])
    reply = await wechat.client.push(text_message(new_openid(), "你好"))
    assert reply.content == "第一条\n\n第二条"


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content>"
    "<MsgId>1</MsgId></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content>"
    "<MsgId>2</MsgId></xml>"
)


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "xxe"])
async def test_xml_with_a_dtd_is_refused_quickly(start: Start, document: str) -> None:
    wechat = await start(safe=False)
    started = time.monotonic()
    reply = await wechat.client.post_raw(wechat.client.signed_query(), document.encode())
    assert reply.status == 400
    assert time.monotonic() - started < 1.0
    assert wechat.rasa.messages == []


async def test_an_xml_bomb_inside_the_encrypted_message_is_refused(start: Start) -> None:
    wechat = await start()
    client = wechat.client
    assert client.crypto is not None
    query = client.signed_query()
    envelope = client.crypto.encrypt_message(BILLION_LAUGHS, query["nonce"], query["timestamp"])
    import xmltodict

    outer = xmltodict.parse(envelope)["xml"]
    query["msg_signature"] = outer["MsgSignature"]
    body = f"<xml><Encrypt><![CDATA[{outer['Encrypt']}]]></Encrypt></xml>".encode()
    assert (await client.post_raw(query, body)).status == 400
    assert wechat.rasa.messages == []


async def test_a_body_over_64_kb_gets_413(start: Start) -> None:
    wechat = await start(safe=False)
    body = b"<xml><Content>" + b"a" * (1024 * 1024) + b"</Content></xml>"
    reply = await wechat.client.post_raw(wechat.client.signed_query(), body)
    assert reply.status == 413
    assert wechat.rasa.messages == []


async def test_malformed_xml_gets_400(start: Start) -> None:
    wechat = await start(safe=False)
    for body in (b"<xml><MsgType>text", b"not xml", b"<other/>", b"<xml></xml>"):
        assert (await wechat.client.post_raw(wechat.client.signed_query(), body)).status == 400
    assert wechat.rasa.messages == []


@pytest.mark.parametrize("make", [image_message, location_message], ids=["image", "location"])
async def test_pictures_and_places_get_the_please_type_reply(
    start: Start, make: Callable[[str], dict[str, Any]]
) -> None:
    wechat = await start()
    reply = await wechat.client.push(make(new_openid()))
    assert reply.content == UNSUPPORTED
    assert wechat.rasa.messages == []


async def test_other_events_get_the_please_type_reply_and_unsubscribe_gets_none(
    start: Start,
) -> None:
    wechat = await start()
    assert (await wechat.client.push(event(new_openid(), "CLICK"))).content == UNSUPPORTED
    reply = await wechat.client.push(event(new_openid(), "unsubscribe"))
    assert (reply.status, reply.body) == (200, "success")
    assert wechat.rasa.messages == []


async def test_subscribe_sends_greet_to_the_assistant(start: Start) -> None:
    wechat = await start(reply=lambda _: [{"text": "您好，我是自动回复的智能助手。"}])
    reply = await wechat.client.push(event(new_openid(), "subscribe"))
    assert reply.content == "您好，我是自动回复的智能助手。"
    assert wechat.rasa.texts == ["/greet"]


async def test_voice_uses_the_recognition(start: Start) -> None:
    wechat = await start()
    openid = new_openid()
    reply = await wechat.client.push(voice_message(openid, "我想申请分期"))
    assert reply.content == "收到：我想申请分期"
    assert wechat.rasa.texts == ["我想申请分期"]
    reply = await wechat.client.push(voice_message(openid, ""))
    assert reply.content == UNSUPPORTED
    assert wechat.rasa.texts == ["我想申请分期"]


async def test_a_message_opens_the_48_hour_window_and_an_unsupported_one_does_not(
    start: Start,
) -> None:
    """Reminders use the customer-service API only within 48 hours of the user's message."""
    wechat = await start()
    writer, silent = new_openid(), new_openid()
    before = time.time()
    await wechat.client.push(text_message(writer, "你好"))
    await wechat.client.push(image_message(silent))
    store, app_id = wechat.endpoint.store, wechat.fake.app_id
    written = await store.get(last_message_key(app_id, writer))
    assert written is not None and before - 1 <= float(written) <= time.time()
    assert await store.get(last_message_key(app_id, silent)) is None
    await store.delete(last_message_key(app_id, writer))


async def test_the_script_a_user_is_answered_in_is_kept_for_their_reminders(
    start: Start,
) -> None:
    answer = {"text": "您好，請問有什麼可以幫您？", "script": "zh-Hant-HK"}
    wechat = await start(reply=lambda _: [answer])
    openid = new_openid()
    await wechat.client.push(text_message(openid, "唔該幫我睇下"))
    store, app_id = wechat.endpoint.store, wechat.fake.app_id
    assert await store.get(script_key(app_id, openid)) == "zh-Hant-HK"
    await store.delete(script_key(app_id, openid))


# --- retries and slow answers --------------------------------------------------------------


async def test_a_retry_storm_is_one_turn(start: Start) -> None:
    wechat = await start(delay=1.0)
    message = text_message(new_openid(), "罚息怎么算")
    replies = await asyncio.gather(*(wechat.client.push(message) for _ in range(3)))
    assert len(wechat.rasa.messages) == 1
    contents = {r.content for r in replies}
    assert all(r.status == 200 for r in replies)
    assert contents <= {"收到：罚息怎么算", None}
    assert "收到：罚息怎么算" in contents
    # A retry after the answer gets the same passive reply, not a second turn.
    late = await wechat.client.push(message)
    assert late.content == "收到：罚息怎么算"
    assert len(wechat.rasa.messages) == 1
    assert wechat.fake.all_sent() == []


async def test_repeated_events_are_one_turn(start: Start) -> None:
    wechat = await start()
    subscribe = event(new_openid(), "subscribe")
    for _ in range(3):
        await wechat.client.push(subscribe)
    assert wechat.rasa.texts == ["/greet"]


async def test_a_slow_answer_goes_through_the_customer_service_api(start: Start) -> None:
    wechat = await start(delay=6.0, reply=lambda _: [{"text": "答复一"}, {"text": "答复二"}])
    openid = new_openid()
    message = text_message(openid, "我想协商还款")
    started = time.monotonic()
    reply = await wechat.client.push(message)
    assert time.monotonic() - started < 5.0
    assert (reply.status, reply.body) == (200, "success")
    # WeChat retries: still one turn, and no passive reply for the retry.
    retry = await wechat.client.push(message)
    assert retry.body == "success"
    assert await wechat.fake.wait_for(openid, 2, timeout=10) == ["答复一", "答复二"]
    assert (await wechat.client.push(message)).body == "success"
    assert len(wechat.rasa.messages) == 1
    assert wechat.fake.token_calls == 1


@pytest.mark.parametrize("errcode", [40001, 42001])
async def test_an_expired_token_is_fetched_again_and_the_send_retried_once(
    errcode: int,
) -> None:
    fake = FakeWeChatApi()
    base = await fake.start()
    api = WeChatApi(fake.app_id, fake.app_secret, base)
    try:
        await api.send_text("o-user", "第一条")
        assert fake.token_calls == 1
        await api.send_text("o-user", "第二条")
        assert fake.token_calls == 1
        fake.expire_tokens(errcode)
        await api.send_text("o-user", "第三条")
        assert fake.token_calls == 2
        assert fake.rejected_sends == 1
        assert fake.sent_to("o-user") == ["第一条", "第二条", "第三条"]
    finally:
        await api.close()
        await fake.stop()


async def test_a_send_is_retried_only_once() -> None:
    fake = FakeWeChatApi()
    base = await fake.start()
    api = WeChatApi(fake.app_id, fake.app_secret, base)
    original = fake.valid_tokens

    class NeverValid(set[str]):
        def __contains__(self, item: object) -> bool:
            return False

    fake.valid_tokens = NeverValid()
    try:
        with pytest.raises(Exception, match="40001"):
            await api.send_text("o-user", "第一条")
        assert fake.send_calls == 2
        assert fake.token_calls == 2
    finally:
        fake.valid_tokens = original
        await api.close()
        await fake.stop()


# --- buttons and long answers -------------------------------------------------------------


async def test_buttons_become_numbered_lines_and_a_number_picks_one(start: Start) -> None:
    def plans(text: str) -> list[dict[str, Any]]:
        if text.startswith("/"):
            return [{"text": f"您选择了 {text}"}]
        return [{"text": "请选择一个方案", "buttons": PLAN_BUTTONS}]

    wechat = await start(reply=plans)
    openid = new_openid()
    reply = await wechat.client.push(text_message(openid, "有什么方案"))
    assert reply.content == "请选择一个方案\n回复 1 选择「方案1」\n回复 2 选择「方案2」"
    reply = await wechat.client.push(text_message(openid, "2"))
    assert wechat.rasa.texts[-1] == '/choose_plan{"plan_index": 2}'
    # The answer showed no buttons: a number is a number again.
    await wechat.client.push(text_message(openid, "2"))
    assert wechat.rasa.texts[-1] == "2"


async def test_a_number_beyond_the_buttons_is_passed_on(start: Start) -> None:
    wechat = await start(reply=lambda _: [{"text": "请选择", "buttons": PLAN_BUTTONS}])
    openid = new_openid()
    await wechat.client.push(text_message(openid, "方案"))
    await wechat.client.push(text_message(openid, "3000"))
    await wechat.client.push(text_message(openid, "选１"))
    assert wechat.rasa.texts == ["方案", "3000", '/choose_plan{"plan_index": 1}']


def test_choices() -> None:
    for text, number in [("1", 1), ("１", 1), ("选1", 1), ("选 2", 2), ("第二个", 2), ("2。", 2)]:
        assert parse_choice(text) == number, text
    for text in ("", "一千", "123", "选", "我选1号方案吧"):
        assert parse_choice(text) is None, text
    assert choose("2", PLAN_BUTTONS) == PLAN_BUTTONS[1]["payload"]
    assert choose("0", PLAN_BUTTONS) is None
    assert render_message({"text": "请确认", "buttons": [{"title": "确认登记"}]}) == (
        "请确认\n回复 1 选择「确认登记」"
    )


def test_long_text_is_split_at_line_breaks_under_2048_bytes() -> None:
    lines = [f"第{i}行：" + "还款计划说明" * 10 for i in range(60)]
    parts = split_text("\n".join(lines))
    assert len(parts) > 1
    assert all(utf8_size(p) <= MAX_TEXT_BYTES for p in parts)
    assert "\n".join(parts).splitlines() == lines
    one_line = "很长" * 3000
    parts = split_text(one_line)
    assert all(utf8_size(p) <= MAX_TEXT_BYTES for p in parts)
    assert "".join(parts) == one_line


async def test_a_long_answer_is_split_between_passive_reply_and_api(start: Start) -> None:
    lines = [f"第{i}期 应还 1,024.35 元，还款日每月 10 日" for i in range(1, 120)]
    wechat = await start(reply=lambda _: [{"text": "\n".join(lines)}])
    openid = new_openid()
    reply = await wechat.client.push(text_message(openid, "查看还款计划"))
    assert reply.content is not None
    assert utf8_size(reply.content) <= MAX_TEXT_BYTES
    await wechat.endpoint.drain()
    rest = wechat.fake.sent_to(openid)
    assert rest and all(utf8_size(p) <= MAX_TEXT_BYTES for p in rest)
    assert "\n".join([reply.content, *rest]).splitlines() == lines


# --- staff replies, configuration, the store --------------------------------------------


async def test_staff_replies_go_through_the_customer_service_api(start: Start) -> None:
    wechat = await start()
    openid = new_openid()
    output = wechat.channel.get_output_channel()
    assert output is not None and output.name() == "wechat"
    await output.send_response(sender_id(openid), {"text": "您好，我是协商专员小李。"})
    await output.send_response(sender_id(openid), {"text": "请确认", "buttons": PLAN_BUTTONS})
    assert wechat.fake.sent_to(openid) == [
        "您好，我是协商专员小李。",
        "请确认\n回复 1 选择「方案1」\n回复 2 选择「方案2」",
    ]
    assert openid_of(sender_id(openid)) == openid


def test_the_environment_wins_over_the_credentials_file(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = {"token": "from-file", "app_id": "wx-file", "api_base": "http://file"}
    environ = {"WECHAT_TOKEN": "from-env", "WECHAT_AES_KEY": AES_KEY}
    config = WeChatConfig.from_sources(credentials, environ)
    assert (config.token, config.app_id, config.api_base) == ("from-env", "wx-file", "http://file")
    assert config.safe_mode
    assert WeChatConfig.from_sources(None, {}).api_base == "https://api.weixin.qq.com"
    assert "43" in str(WeChatConfig(token="t", app_id="a", aes_key="short").problem())
    for name in ("WECHAT_TOKEN", "WECHAT_APP_ID", "WECHAT_AES_KEY"):
        monkeypatch.delenv(name, raising=False)
    unconfigured = WeChatInput.from_credentials(None)
    assert isinstance(unconfigured, WeChatInput)
    assert "WECHAT_TOKEN" in str(unconfigured.config.problem())
    assert unconfigured.get_output_channel() is None
    monkeypatch.setenv("WECHAT_TOKEN", "from-env")
    configured = WeChatInput.from_credentials({"token": "from-file"})
    assert isinstance(configured, WeChatInput)
    assert configured.config.token == "from-env"
    assert configured.get_output_channel() is not None


async def test_without_redis_the_store_falls_back_to_memory(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    store = SharedStore(UNREACHABLE)
    with caplog.at_level(logging.WARNING):
        assert await store.set("k", "v", 60, only_new=True)
        assert not await store.set("k", "w", 60, only_new=True)
        assert await store.get("k") == "v"
    assert not store.uses_redis
    assert "unreachable" in caplog.text
    await store.delete("k")
    assert await store.get("k") is None
    await store.close()


async def test_without_redis_the_channel_still_answers_in_the_default_profile(
    start: Start,
) -> None:
    wechat = await start(redis_url=UNREACHABLE)
    message = text_message(new_openid(), "你好")
    assert (await wechat.client.push(message)).content == "收到：你好"
    assert (await wechat.client.push(message)).content == "收到：你好"
    assert wechat.rasa.texts == ["你好"]
    assert not wechat.channel.store.uses_redis


async def test_scale_profile_without_redis_answers_503_and_runs_no_turn(
    start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    wechat = await start(redis_url=UNREACHABLE)
    assert wechat.channel.store.scale
    with caplog.at_level(logging.ERROR, logger="bot.rasa_ext.channels.wechat_store"):
        for message in (text_message(new_openid(), "你好"), event(new_openid(), "subscribe")):
            reply = await wechat.client.push(message)
            assert reply.status == 503
            assert "de-duplication" in reply.body
    assert wechat.rasa.messages == []
    assert "BOT_PROFILE=scale" in caplog.text
    # Fail closed: a request whose signature cannot be claimed is not accepted,
    # even one that runs no turn (its query could be replayed with a text).
    assert (await wechat.client.push(image_message(new_openid()))).status == 503
    # URL verification runs nothing and needs no store.
    assert (await wechat.client.verify("echo-1")).body == "echo-1"


async def test_scale_profile_a_retry_answers_503_when_redis_fails_while_it_waits(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    wechat = await start(delay=1.0)
    message = text_message(new_openid(), "罚息怎么算")
    first = asyncio.create_task(wechat.client.push(message))
    await asyncio.sleep(0.3)
    store = wechat.channel.store
    real_get = store.get

    async def failing_get(key: str) -> str | None:
        raise SharedStoreUnavailable("Redis went away")

    monkeypatch.setattr(store, "get", failing_get)
    retry = await wechat.client.push(message)
    assert retry.status == 503
    monkeypatch.setattr(store, "get", real_get)
    assert (await first).content == "收到：罚息怎么算"
    assert wechat.rasa.texts == ["罚息怎么算"]


async def test_scale_profile_buttons_unavailable_count_as_none(
    start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    wechat = await start(reply=lambda _: [{"text": "请选择", "buttons": PLAN_BUTTONS}])
    openid = new_openid()
    await wechat.client.push(text_message(openid, "方案"))
    store = wechat.channel.store
    real_get, real_set = store.get, store.set

    async def get(key: str) -> str | None:
        if ":buttons:" in key:
            raise SharedStoreUnavailable("Redis went away")
        return await real_get(key)

    async def set_(key: str, value: str, ttl: float, *, only_new: bool = False) -> bool:
        if ":buttons:" in key:
            raise SharedStoreUnavailable("Redis went away")
        return await real_set(key, value, ttl, only_new=only_new)

    monkeypatch.setattr(store, "get", get)
    monkeypatch.setattr(store, "set", set_)
    with caplog.at_level(logging.WARNING, logger="bot.rasa_ext.channels.wechat"):
        reply = await wechat.client.push(text_message(openid, "2"))
    # The turn ran with the number as it is, and its answer was delivered.
    assert wechat.rasa.texts == ["方案", "2"]
    assert reply.content is not None and reply.content.startswith("请选择")
    assert "buttons shown to" in caplog.text


def test_without_the_response_in_the_domain_there_is_no_answer(tmp_path: Path) -> None:
    from bot.rasa_ext.channels.wechat import load_response_text

    path = tmp_path / "domain.yml"
    path.write_text('version: "3.1"\nresponses: {}\n', encoding="utf-8")
    assert load_response_text(str(path), "utter_wechat_unsupported") is None
