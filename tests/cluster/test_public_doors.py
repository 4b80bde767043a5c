"""The cluster's public door: the channels and socket.io pass, the HTTP API does not.

Through nginx's public port a debtor reaches `/webhooks/` and `/socket.io/`;
everything else, the Rasa HTTP API above all, is 404, even with a valid JWT or
the old `?token=`. The consoles reach the API on nginx's internal port, where a
JWT is required and a `?token=` is refused; nginx's access log holds no query
string.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from bot.tools.cluster import Cluster
from tests.support.cluster import (
    JWT_SECRET,
    bearer,
    quoted,
    reply_texts,
    signed_rest,
    stored_events,
)

pytestmark = pytest.mark.cluster

#: The query string of requests that must never be written to a log.
MARKER = f"secret-{uuid.uuid4().hex}"


async def raw_status(port: int, target: str) -> int:
    """The status nginx answers to `GET target`, sent byte for byte (no client clean-up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_the_http_api_is_not_behind_the_public_door(cluster: Cluster) -> None:
    entry, api = cluster.config.entry_url, cluster.config.rasa_api_url
    sender = f"cl-doors-{uuid.uuid4().hex}"
    path = f"/conversations/{quoted(sender)}"
    async with aiohttp.ClientSession() as session:
        # A debtor's REST channel works through the public door.
        async with session.post(
            f"{entry}/webhooks/rest/webhook", **signed_rest(sender, "逾期会影响征信吗")
        ) as response:
            assert response.status == 200
            assert "征信" in "".join(reply_texts(await response.json()))
        async with session.get(f"{entry}/webhooks/webchat/") as response:
            assert response.status == 200, "the web chat page is public"
        async with session.get(f"{entry}/socket.io/?EIO=4&transport=polling") as response:
            assert response.status == 200, "socket.io is public"

        calls = [
            ("GET", f"{path}/tracker", None),
            ("POST", f"{path}/messages", {"text": "有人改了我的对话", "sender": "user"}),
            ("POST", f"{path}/tracker/events", [{"event": "bot", "text": "假冒的回复"}]),
            ("POST", f"{path}/execute", {"name": "action_handoff_resume"}),
            ("POST", "/model/parse", {"text": "你好"}),
            ("GET", "/status", None),
            ("GET", "/", None),
        ]
        for method, target, body in calls:
            for auth in ({"headers": bearer(cluster)}, {"params": {"token": JWT_SECRET}}):
                async with session.request(method, f"{entry}{target}", json=body, **auth) as r:
                    assert r.status == 404, (method, target, r.status)

        # The same API on the internal port: a JWT is needed, a `?token=` is not enough.
        async with session.get(f"{api}{path}/tracker", headers=bearer(cluster)) as response:
            assert response.status == 200
            tracker = await response.json()
        assert tracker["latest_message"]["text"] == "逾期会影响征信吗"
        async with session.get(f"{api}{path}/tracker", params={"token": JWT_SECRET}) as response:
            assert response.status == 401
        async with session.get(f"{api}{path}/tracker") as response:
            assert response.status == 401
        wrong = {"Authorization": "Bearer " + "x" * 40}
        async with session.post(f"{api}/model/parse", json={"text": "你好"}, headers=wrong) as r:
            assert r.status == 401
        async with session.post(
            f"{api}/model/parse", json={"text": "你好"}, headers=bearer(cluster)
        ) as response:
            assert response.status == 200 and (await response.json())["intent"]["name"]

        # A query string is never written down.
        async with session.get(f"{entry}/webhooks/rest/?token={MARKER}") as response:
            assert response.status == 200
        async with session.get(f"{api}{path}/tracker?token={MARKER}") as response:
            assert response.status == 401

    # Dot segments and encodings do not reach the API through the channels' path.
    port = cluster.config.entry_port
    for target in (
        f"/webhooks/..{path}/tracker",
        f"/webhooks/%2e%2e{path}/tracker",
        f"/webhooks/..%2F{path[1:]}/tracker",
        f"/socket.io/../model/parse?token={MARKER}",
        f"/webhooks/rest/../../{path[1:]}/tracker",
    ):
        assert await raw_status(port, target) == 404, target

    # Nothing sent through the public door reached the conversation.
    stored = stored_events(cluster, sender)
    assert [e["text"] for e in stored if e["event"] == "user"] == ["逾期会影响征信吗"]
    assert "假冒的回复" not in [e.get("text") for e in stored if e["event"] == "bot"]
    log = (cluster.config.log_dir / "nginx-access.log").read_text(encoding="utf-8")
    assert f"GET {path}/tracker 404" in log and f"GET {path}/tracker 401" in log
    assert MARKER not in log
    assert "?" not in "".join(line.split(" ")[2] for line in log.splitlines() if line)


async def test_the_console_works_on_its_internal_address(cluster: Cluster) -> None:
    """The consoles answer on their own port; the public door does not serve them."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{cluster.config.console_url}/health") as response:
            assert response.status == 200
        async with session.get(f"{cluster.config.console_url}/login") as response:
            assert response.status == 200
        for target in ("/login", "/health", "/api/me"):
            async with session.get(f"{cluster.config.entry_url}{target}") as response:
                assert response.status == 404, target
