"""The staff console over HTTP, on SQLite and PostgreSQL.

The console runs in a real aiohttp test server; Rasa is a small local aiohttp
server that records what it is sent and can be told to fail (the real Rasa is
covered by the end-to-end tests). Transcripts come from a real SQLite file in
Rasa's `events` format.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.console import __main__ as cli
from bot.console.app import create_app
from bot.console.middlewares import MACHINE_PATHS
from bot.console.rasa_api import PATH_SAFE
from bot.console.state import CONSOLE
from bot.console.texts import CASE_ERRORS
from bot.store import audit, resume, staff
from bot.store.engine import REPO_ROOT, Database
from bot.store.models import CollectionsReferral, HandoffCase, StaffMember
from bot.store.worklist import CASE_ERROR_CODES
from tests.support.staff import cheap_argon2
from tests.support.tracker_events import bot_event, make_tracker_db, user_event, write_events

PASSWORD = "correct horse battery"
RASA_TOKEN = "rasa-jwt-secret-of-at-least-32-bytes"
SECRET_KEY = b"k" * 32
HOSTILE = "<script>alert(1)</script>"
T0 = datetime(2025, 6, 1, 1, 0, tzinfo=timezone.utc)
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _cheap_argon2() -> Iterator[None]:
    with cheap_argon2():
        yield


# --- a fake Rasa ----------------------------------------------------------------------------


@dataclass
class FakeRasa:
    """Records the requests it gets; answers 500 while `fail` is set."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    #: Seconds each answer takes, as a busy Rasa server would.
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        self.requests.append(
            {
                "method": request.method,
                "raw_path": request.raw_path.split("?", 1)[0],
                "query": dict(request.query),
                "user": rasa_api_user(request),
                "body": await request.json(),
            }
        )
        if self.fail:
            return web.json_response({"message": "boom"}, status=500)
        return web.json_response({"sender_id": "x"})


def rasa_api_user(request: web.Request) -> Any:
    """The `user` of the request's bearer token, checked as Rasa's `--jwt-secret` does."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer":
        return None
    payload = jwt.decode(token, RASA_TOKEN, algorithms=["HS256"])
    assert 0 < payload["exp"] - payload["iat"] <= 60, "a short-lived token"
    return payload["user"]


@pytest.fixture
async def fake_rasa() -> AsyncIterator[tuple[FakeRasa, str]]:
    fake = FakeRasa()
    app = web.Application()
    app.router.add_post("/conversations/{conversation_id}/{endpoint:.+}", fake.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- data -----------------------------------------------------------------------------------

CONVERSATION = "web/用户 1?x"
#: As Rasa matches it: the characters a path segment may hold as they are.
CONVERSATION_IN_PATH = urllib.parse.quote(CONVERSATION, safe=PATH_SAFE)
_references = itertools.count(1)


async def add_case(
    db: Database,
    conversation_id: str,
    *,
    reason: str = "request_human",
    priority: int = 3,
    created_at: datetime = T0,
    summary: dict[str, Any] | None = None,
    status: str = "waiting",
    staff_id: int | None = None,
    outcome: str | None = None,
) -> int:
    case = HandoffCase(
        reference=f"RG20250601-{next(_references):06X}",
        conversation_id=conversation_id,
        channel="rest",
        reason=reason,
        priority=priority,
        summary=json.dumps(summary or {}, ensure_ascii=False),
        status=status,
        staff_id=staff_id,
        outcome=outcome,
        created_at=created_at,
        claimed_at=None if staff_id is None else created_at,
        closed_at=created_at if status == "closed" else None,
    )
    async with db.session() as session:
        session.add(case)
        await session.commit()
    return case.id


async def case_row(db: Database, case_id: int) -> HandoffCase:
    async with db.session() as session:
        case = await session.get(HandoffCase, case_id)
    assert case is not None
    return case


async def actions(db: Database) -> list[str]:
    return [entry.action for entry in await audit.entries(db)]


@dataclass
class Console:
    """The console under test, its database, its fake Rasa and signed-in clients."""

    db: Database
    rasa: FakeRasa
    server: TestServer
    app: web.Application
    staff: dict[str, StaffMember]
    clients: list[TestClient] = field(default_factory=list)

    async def client(self) -> TestClient:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return client

    async def signed_in(self, username: str) -> tuple[TestClient, str]:
        """A client signed in as `username`, and its CSRF token."""
        client = await self.client()
        response = await sign_in(client, username, PASSWORD)
        assert response.status == 303, await response.text()
        me = await (await client.get("/api/me")).json()
        return client, me["csrf_token"]


async def login_token(client: TestClient) -> str:
    page = await (await client.get("/login")).text()
    match = CSRF_FIELD.search(page)
    assert match
    return match.group(1)


async def sign_in(
    client: TestClient, username: str, password: str, *, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    token = await login_token(client)
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
        headers=headers,
    )


@pytest.fixture
def tracker_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_tracker_db(
        tmp_path / "tracker.db",
        [
            (CONVERSATION, "user", 0, user_event(HOSTILE)),
            (CONVERSATION, "action", 1, {"event": "action", "name": "action_handoff"}),
            (CONVERSATION, "bot", 2, bot_event("正在为您转接人工")),
        ],
    )
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.setenv("TRACKER_DB", str(path))
    return path


async def start_console(
    db: Database, rasa: FakeRasa, rasa_url: str, **options: Any
) -> tuple[TestServer, web.Application]:
    # The test server speaks plain HTTP: its cookies must not be Secure-only.
    options.setdefault("secure_cookies", False)
    app = create_app(db, rasa_url=rasa_url, rasa_token=RASA_TOKEN, secret_key=SECRET_KEY, **options)
    server = TestServer(app)
    await server.start_server()
    return server, app


@pytest.fixture
async def console(
    db: Database, fake_rasa: tuple[FakeRasa, str], tracker_db: Path
) -> AsyncIterator[Console]:
    rasa, url = fake_rasa
    members = {
        "alice": await staff.create_staff(db, "alice", "李娜", PASSWORD, "negotiator"),
        "bob": await staff.create_staff(db, "bob", "王强", PASSWORD, "negotiator"),
        "sam": await staff.create_staff(db, "sam", "张主管", PASSWORD, "supervisor"),
    }
    server, app = await start_console(db, rasa, url)
    state = Console(db, rasa, server, app, members)
    try:
        yield state
    finally:
        for client in state.clients:
            await client.close()
        await server.close()


# --- signing in -----------------------------------------------------------------------------


async def test_sign_in_success_and_failure(console: Console) -> None:
    client = await console.client()
    wrong = await sign_in(client, "alice", "not the password")
    assert wrong.status == 401
    assert "用户名或密码错误" in await wrong.text()
    assert (await client.get("/api/me")).status == 401

    right = await sign_in(client, "alice", PASSWORD)
    assert right.status == 303 and right.headers["Location"] == "/"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Max-Age=43200" in cookie
    me = await (await client.get("/api/me")).json()
    assert me["username"] == "alice" and me["display_name"] == "李娜" and me["csrf_token"]
    page = await client.get("/")
    assert page.status == 200 and "李娜" in await page.text()
    assert "staff_signed_in" in await actions(console.db)


async def test_sixth_attempt_is_refused_even_with_the_right_password(console: Console) -> None:
    client = await console.client()
    for _ in range(5):
        assert (await sign_in(client, "alice", "not the password")).status == 401
    limited = await sign_in(client, "alice", PASSWORD)
    assert limited.status == 429
    assert "登录失败次数过多" in await limited.text()
    assert (await client.get("/api/me")).status == 401


async def _sign_in_audits(db: Database) -> list[tuple[str, str]]:
    """(action, remote address) of every sign-in audited, in order."""
    return [
        (e.action, e.details["remote_address"])
        for e in await audit.entries(db)
        if e.action in ("staff_signed_in", "staff_sign_in_failed")
    ]


async def test_the_right_password_signs_in_from_an_address_over_its_limit(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request comes from the one proxy (127.0.0.1), which the console does not trust.
    monkeypatch.delenv("CONSOLE_TRUSTED_PROXIES", raising=False)
    client = await console.client()
    for number in range(staff.MAX_ADDRESS_FAILURES):
        assert (await sign_in(client, f"guess{number}", "not the password")).status == 401
    # The address is over its limit: a wrong password is refused as limited ...
    assert (await sign_in(client, "bob", "not the password")).status == 429
    # ... but colleagues behind the same proxy still sign in.
    right = await sign_in(client, "alice", PASSWORD)
    assert right.status == 303, await right.text()
    assert (await (await client.get("/api/me")).json())["username"] == "alice"
    other = await console.client()
    assert (await sign_in(other, "bob", PASSWORD)).status == 303


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "10.9.0.0/16, 127.0.0.1")
    client = await console.client()
    # The client wrote the first address itself; nginx appended the real one.
    guesser = {"X-Forwarded-For": "1.2.3.4, 203.0.113.7"}
    for number in range(staff.MAX_ADDRESS_FAILURES):
        wrong = await sign_in(client, f"guess{number}", "nope", headers=guesser)
        assert wrong.status == 401
    assert (await sign_in(client, "bob", "nope", headers=guesser)).status == 429
    # Another client of the same proxy is not affected by the guesser's address.
    colleague = {"X-Forwarded-For": "203.0.113.8"}
    assert (await sign_in(client, "bob", "nope", headers=colleague)).status == 401
    assert (await sign_in(client, "alice", PASSWORD, headers=colleague)).status == 303
    audits = await _sign_in_audits(console.db)
    assert audits[0] == ("staff_sign_in_failed", "203.0.113.7")
    assert audits[-2:] == [
        ("staff_sign_in_failed", "203.0.113.8"),
        ("staff_signed_in", "203.0.113.8"),
    ]
    assert {address for _, address in audits} == {"203.0.113.7", "203.0.113.8"}


async def test_forwarded_for_is_ignored_unless_it_comes_from_a_trusted_proxy(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    for trusted in ("", "10.9.0.2"):
        monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", trusted)
        client = await console.client()
        assert (await sign_in(client, "alice", "nope", headers=spoofed)).status == 401
        assert (await sign_in(client, "alice", PASSWORD, headers=spoofed)).status == 303
    assert {address for _, address in await _sign_in_audits(console.db)} == {"127.0.0.1"}


async def test_secure_cookies_when_configured(
    db: Database, fake_rasa: tuple[FakeRasa, str]
) -> None:
    server, _ = await start_console(db, fake_rasa[0], fake_rasa[1], secure_cookies=True)
    client = TestClient(server)
    try:
        await client.start_server()
        response = await client.get("/login")
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        await client.close()


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(console: Console) -> None:
    client, token = await console.signed_in("alice")
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["console_session"]
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    assert (await client.get("/api/me")).status == 401
    copy = await console.client()
    copied = await copy.get("/api/me", headers={"Cookie": f"console_session={cookie.value}"})
    assert copied.status == 401
    assert "staff_signed_out" in await actions(console.db)


async def test_deactivated_staff_lose_access_at_the_next_request(console: Console) -> None:
    client, token = await console.signed_in("alice")
    assert (await client.get("/api/me")).status == 200
    await staff.set_active(console.db, "alice", False)
    assert (await client.get("/api/me")).status == 401
    page = await client.get("/", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/login"


# --- no session, no CSRF --------------------------------------------------------------------


def _routes(app: web.Application, case_id: int) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if route.method == "HEAD" or path is None:
            continue
        routes.append((route.method, path.replace("{id}", str(case_id))))
    return routes


async def test_no_page_or_api_call_works_without_a_session(console: Console) -> None:
    case_id = await add_case(console.db, CONVERSATION)
    routes = _routes(console.app, case_id)
    # 10: the offer pages and their API (offer_pages.py); 3: the agreements (agreement_pages.py)
    assert len(routes) == 22 + 10 + 3
    forged = await console.client()
    anonymous = await console.client()
    checked = 0
    for method, path in routes:
        if path in ("/login", "/health") or path in MACHINE_PATHS:
            continue  # the machine routes check a signature instead (test_payment_push.py)
        for client, headers in (
            (anonymous, {}),
            (forged, {"Cookie": "console_session=eyJzIjoxfQ.forged.signature"}),
        ):
            response = await client.request(
                method, path, allow_redirects=False, json={"text": "x"}, headers=headers
            )
            if path.startswith("/api/"):
                assert response.status == 401, (method, path)
                assert await response.json() == {"error": "请先登录"}
            else:
                assert response.status == 302, (method, path)
                assert response.headers["Location"] == "/login"
            checked += 1
    # Every route but the two of /login, /health and the payments push, by both clients.
    assert checked == 2 * (35 - 4)
    assert (await case_row(console.db, case_id)).status == "waiting"
    assert console.rasa.requests == []


async def test_health_needs_no_session_and_tells_nothing(console: Console) -> None:
    response = await (await console.client()).get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_static_files_need_no_session(console: Console) -> None:
    response = await (await console.client()).get("/static/console.css")
    assert response.status == 200


async def test_a_post_without_csrf_token_is_refused_and_changes_nothing(console: Console) -> None:
    case_id = await add_case(console.db, CONVERSATION)
    alice, token = await console.signed_in("alice")
    for path, form in (
        (f"/cases/{case_id}/claim", {}),
        (f"/cases/{case_id}/claim", {"csrf_token": "wrong"}),
        (f"/cases/{case_id}/close", {"outcome": "other", "note": ""}),
        ("/logout", {}),
    ):
        response = await alice.post(path, data=form, allow_redirects=False)
        assert response.status == 403, path
        assert "安全校验失败" in await response.text()
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        response = await alice.post(f"/api/cases/{case_id}/claim", headers=headers)
        assert response.status == 403
        assert (await response.json())["error"].startswith("安全校验失败")
    # A token in a form field does not count for the API.
    response = await alice.post(f"/api/cases/{case_id}/claim", data={"csrf_token": token})
    assert response.status == 403
    row = await case_row(console.db, case_id)
    assert row.status == "waiting" and row.staff_id is None
    assert "handoff_claimed" not in await actions(console.db)
    assert (await alice.get("/api/me")).status == 200  # not signed out either

    # The holder's reply and close without a token: nothing sent, nothing closed.
    assert (await alice.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": token})).ok
    reply = await alice.post(f"/api/cases/{case_id}/reply", json={"text": "您好"})
    close = await alice.post(f"/api/cases/{case_id}/close", json={"outcome": "other"})
    assert (reply.status, close.status) == (403, 403)
    assert console.rasa.requests == []
    assert (await case_row(console.db, case_id)).status == "claimed"


async def _raw_post(server: TestServer, path: str, head: bytes, body: bytes) -> int:
    """The status of a POST sent byte for byte (a client would refuse to send such bytes)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\nHost: console\r\n"
            + head
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + b"Connection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        status_line = (await reader.read()).split(b"\r\n", 1)[0]
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_a_non_ascii_csrf_token_is_refused_not_an_error(console: Console) -> None:
    case_id = await add_case(console.db, CONVERSATION)
    alice, token = await console.signed_in("alice")
    for header in ("令牌", "é" + token[1:]):
        response = await alice.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": header})
        assert response.status == 403
    form = {"csrf_token": "令牌" + token}
    assert (await alice.post(f"/cases/{case_id}/claim", data=form)).status == 403

    cookie = alice.session.cookie_jar.filter_cookies(alice.make_url("/"))["console_session"]
    head = b"Cookie: console_session=" + cookie.value.encode() + b"\r\n"
    # Bytes that are not UTF-8, in the header and in the form.
    in_header = [
        b"X-CSRF-Token: \xff\xfe" + token.encode() + b"\r\n",
        b"X-CSRF-Token: \xc3\x28\r\n",
    ]
    statuses = [
        await _raw_post(console.server, f"/api/cases/{case_id}/claim", head + in_header[0], b""),
        await _raw_post(console.server, f"/cases/{case_id}/claim", head + in_header[1], b""),
        await _raw_post(
            console.server, f"/cases/{case_id}/claim", head, b"csrf_token=\xff" + token.encode()
        ),
        await _raw_post(
            console.server, "/login", head, b"username=alice&password=x&csrf_token=\xff"
        ),
    ]
    assert statuses == [403, 403, 403, 403]
    row = await case_row(console.db, case_id)
    assert row.status == "waiting" and row.staff_id is None


async def test_sign_in_needs_the_login_pages_csrf_token(console: Console) -> None:
    client = await console.client()
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "alice", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403
    assert (await client.get("/api/me")).status == 401


# --- who may read what ----------------------------------------------------------------------


async def test_negotiators_cannot_read_others_cases_or_closed_ones(console: Console) -> None:
    bob = console.staff["bob"].id
    held = await add_case(console.db, "c-held", status="claimed", staff_id=bob)
    closed = await add_case(
        console.db, "c-closed", status="closed", staff_id=bob, outcome="no_contact"
    )
    missing = 999_999
    alice, token = await console.signed_in("alice")
    headers = {"X-CSRF-Token": token}
    for case_id in (held, closed, missing):
        for path in (f"/api/cases/{case_id}", f"/api/cases/{case_id}/transcript"):
            response = await alice.get(path)
            assert response.status == 404, path
            assert await response.json() == {"error": "案件不存在"}
        page = await alice.get(f"/cases/{case_id}")
        assert page.status == 404 and "案件不存在" in await page.text()
        for action, body in (("reply", {"text": "hi"}), ("close", {"outcome": "other"})):
            response = await alice.post(
                f"/api/cases/{case_id}/{action}", json=body, headers=headers
            )
            assert response.status == 404, action
    queue = await (await alice.get("/api/cases")).json()
    assert queue["cases"] == []
    assert (await alice.get("/closed")).status == 403
    assert (await alice.get("/referrals")).status == 403
    assert (await alice.get("/api/cases?status=closed")).status == 403
    assert (await alice.get("/api/referrals")).status == 403
    assert console.rasa.requests == []

    sam, _ = await console.signed_in("sam")
    for case_id in (held, closed):
        assert (await sam.get(f"/api/cases/{case_id}")).status == 200
        assert (await sam.get(f"/cases/{case_id}")).status == 200
    assert (await sam.get(f"/api/cases/{missing}")).status == 404
    all_open = await (await sam.get("/api/cases")).json()
    assert [c["id"] for c in all_open["cases"]] == [held]
    closed_list = await (await sam.get("/api/cases?status=closed")).json()
    assert [c["id"] for c in closed_list["cases"]] == [closed]
    closed_page = await sam.get("/closed")
    assert closed_page.status == 200 and "未能联系上" in await closed_page.text()


# --- claiming -------------------------------------------------------------------------------


async def test_two_staff_claiming_at_once_exactly_one_wins(console: Console) -> None:
    case_id = await add_case(console.db, CONVERSATION)
    alice, alice_token = await console.signed_in("alice")
    bob, bob_token = await console.signed_in("bob")
    responses = await asyncio.gather(
        alice.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": alice_token}),
        bob.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": bob_token}),
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409]
    loser = next(r for r in responses if r.status == 409)
    assert await loser.json() == {"error": "该案件已被其他同事认领"}
    winner = next(r for r in responses if r.status == 200)
    data = (await winner.json())["case"]
    row = await case_row(console.db, case_id)
    assert row.status == "claimed" and row.staff_id == data["staff_id"]
    assert (await actions(console.db)).count("handoff_claimed") == 1


async def test_the_second_claim_on_the_page_gets_a_clear_message(console: Console) -> None:
    case_id = await add_case(console.db, CONVERSATION)
    alice, alice_token = await console.signed_in("alice")
    bob, bob_token = await console.signed_in("bob")
    first = await alice.post(
        f"/cases/{case_id}/claim", data={"csrf_token": alice_token}, allow_redirects=False
    )
    assert first.status == 303 and first.headers["Location"] == f"/cases/{case_id}"
    second = await bob.post(f"/cases/{case_id}/claim", data={"csrf_token": bob_token})
    assert second.status == 200 and "该案件已被其他同事认领" in await second.text()
    assert (await case_row(console.db, case_id)).staff_id == console.staff["alice"].id
    # Claiming one's own case again is harmless.
    again = await alice.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": alice_token})
    assert again.status == 200


# --- replying -------------------------------------------------------------------------------


async def claimed_case(console: Console, username: str = "alice") -> tuple[int, TestClient, str]:
    case_id = await add_case(console.db, CONVERSATION)
    client, token = await console.signed_in(username)
    response = await client.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": token})
    assert response.status == 200
    return case_id, client, token


async def test_a_reply_reaches_rasa_exactly_and_is_audited(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    response = await alice.post(
        f"/api/cases/{case_id}/reply",
        json={"text": "  您好，我是协商专员李娜。  "},
        headers={"X-CSRF-Token": token},
    )
    assert response.status == 200 and await response.json() == {"sent": True}
    reference = (await case_row(console.db, case_id)).reference
    assert console.rasa.requests == [
        {
            "method": "POST",
            "raw_path": f"/conversations/{CONVERSATION_IN_PATH}/tracker/events",
            "query": {"output_channel": "latest", "execute_side_effects": "true"},
            "user": {"username": "bank-console", "role": "admin"},
            "body": [
                {
                    "event": "bot",
                    "text": "您好，我是协商专员李娜。",
                    "metadata": {"staff": "李娜", "handoff": reference},
                }
            ],
        }
    ]
    replies = [e for e in await audit.entries(console.db) if e.action == "handoff_reply"]
    assert len(replies) == 1
    assert replies[0].actor == "staff:alice" and replies[0].conversation_id == CONVERSATION
    assert dict(replies[0].details) == {"reference": reference, "characters": 12}


async def test_a_reply_from_the_page_redirects_back_to_the_case(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    response = await alice.post(
        f"/cases/{case_id}/reply",
        data={"text": "请稍等", "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"].startswith(f"/cases/{case_id}")
    assert [r["body"][0]["text"] for r in console.rasa.requests] == ["请稍等"]


async def test_a_reply_rasa_does_not_take_is_502_and_not_recorded(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    console.rasa.fail = True
    response = await alice.post(
        f"/api/cases/{case_id}/reply", json={"text": "您好"}, headers={"X-CSRF-Token": token}
    )
    assert response.status == 502
    assert await response.json() == {"error": "消息未送达，请重试"}
    page = await alice.post(
        f"/cases/{case_id}/reply", data={"text": "请确认<还款>日期", "csrf_token": token}
    )
    assert page.status == 502
    html = await page.text()
    assert "消息未送达，请重试" in html
    assert ">请确认&lt;还款&gt;日期</textarea>" in html
    assert len(console.rasa.requests) == 2
    assert "handoff_reply" not in await actions(console.db)


async def test_a_reply_when_rasa_is_unreachable_is_502(
    db: Database, fake_rasa: tuple[FakeRasa, str], tracker_db: Path
) -> None:
    member = await staff.create_staff(db, "alice", "李娜", PASSWORD, "negotiator")
    case_id = await add_case(db, CONVERSATION, status="claimed", staff_id=member.id)
    server, _ = await start_console(
        db, fake_rasa[0], f"http://127.0.0.1:{closed_port()}", rasa_timeout=2
    )
    client = TestClient(server)
    try:
        await client.start_server()
        assert (await sign_in(client, "alice", PASSWORD)).status == 303
        token = (await (await client.get("/api/me")).json())["csrf_token"]
        response = await client.post(
            f"/api/cases/{case_id}/reply", json={"text": "您好"}, headers={"X-CSRF-Token": token}
        )
        assert response.status == 502
        assert await response.json() == {"error": "消息未送达，请重试"}
    finally:
        await client.close()
    assert "handoff_reply" not in await actions(db)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text": ""}, 400, "回复内容不能为空"),
        ({"text": " \n\t "}, 400, "回复内容不能为空"),
        ({"text": "字" * 2001}, 400, "回复内容不能超过 2000 个字"),
        ({"text": 12}, 400, "回复内容须为文字"),
        ({}, 400, "回复内容须为文字"),
    ],
)
async def test_bad_replies_are_refused(
    console: Console, body: dict[str, Any], status: int, message: str
) -> None:
    case_id, alice, token = await claimed_case(console)
    response = await alice.post(
        f"/api/cases/{case_id}/reply", json=body, headers={"X-CSRF-Token": token}
    )
    assert response.status == status
    assert await response.json() == {"error": message}
    assert console.rasa.requests == []


async def test_a_reply_at_the_limit_is_sent_and_an_empty_page_reply_keeps_the_form(
    console: Console,
) -> None:
    case_id, alice, token = await claimed_case(console)
    response = await alice.post(
        f"/api/cases/{case_id}/reply", json={"text": "字" * 2000}, headers={"X-CSRF-Token": token}
    )
    assert response.status == 200
    page = await alice.post(f"/cases/{case_id}/reply", data={"text": "   ", "csrf_token": token})
    assert page.status == 400 and "回复内容不能为空" in await page.text()
    assert len(console.rasa.requests) == 1


async def test_only_the_holder_replies(console: Console) -> None:
    waiting = await add_case(console.db, "c-waiting")
    case_id, _, _ = await claimed_case(console, "alice")
    sam, token = await console.signed_in("sam")
    headers = {"X-CSRF-Token": token}
    response = await sam.post(f"/api/cases/{case_id}/reply", json={"text": "hi"}, headers=headers)
    assert response.status == 403
    assert await response.json() == {"error": "只有认领该案件的同事可以回复"}
    response = await sam.post(f"/api/cases/{waiting}/reply", json={"text": "hi"}, headers=headers)
    assert response.status == 409
    assert console.rasa.requests == []
    page = await sam.get(f"/cases/{case_id}")
    assert 'action="/cases/' + str(case_id) + '/reply"' not in await page.text()


# --- closing --------------------------------------------------------------------------------


async def test_close_with_a_bad_outcome_is_400_and_changes_nothing(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    headers = {"X-CSRF-Token": token}
    for body in ({"outcome": "won"}, {"outcome": None}, {}, {"outcome": "other", "note": 5}):
        response = await alice.post(f"/api/cases/{case_id}/close", json=body, headers=headers)
        assert response.status == 400, body
    page = await alice.post(
        f"/cases/{case_id}/close", data={"outcome": "", "note": "记下<这个>", "csrf_token": token}
    )
    assert page.status == 400
    html = await page.text()
    assert "请选择有效的结案结果" in html and ">记下&lt;这个&gt;</textarea>" in html
    assert (await case_row(console.db, case_id)).status == "claimed"
    assert console.rasa.requests == []


async def test_close_resumes_the_assistant(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    response = await alice.post(
        f"/api/cases/{case_id}/close",
        json={"outcome": "promise_to_pay", "note": "月底前还 500 元"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status == 200
    data = await response.json()
    assert data["resumed"] is True and data["case"]["status"] == "closed"
    row = await case_row(console.db, case_id)
    assert (row.status, row.outcome, row.note) == ("closed", "promise_to_pay", "月底前还 500 元")
    assert console.rasa.requests == [
        {
            "method": "POST",
            "raw_path": f"/conversations/{CONVERSATION_IN_PATH}/execute",
            "query": {"output_channel": "latest"},
            "user": {"username": "bank-console", "role": "admin"},
            "body": {"name": "action_handoff_resume"},
        }
    ]
    again = await alice.post(
        f"/api/cases/{case_id}/close", json={"outcome": "other"}, headers={"X-CSRF-Token": token}
    )
    assert again.status == 404  # closed: no longer hers to see


async def awaiting(db: Database) -> list[int]:
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    return [case.id for case in await resume.awaiting_resume(db, since)]


async def test_a_failed_resume_keeps_the_case_closed_warns_and_is_retried(
    console: Console,
) -> None:
    case_id, alice, token = await claimed_case(console)
    console.rasa.fail = True
    response = await alice.post(
        f"/cases/{case_id}/close", data={"outcome": "no_contact", "csrf_token": token}
    )
    assert response.status == 200
    assert "未能通知智能助手恢复对话" in await response.text()
    assert (await case_row(console.db, case_id)).status == "closed"
    assert await awaiting(console.db) == [case_id]

    state = console.app[CONSOLE]
    await state.retry_resumes()  # Rasa still failing: still waiting
    assert await awaiting(console.db) == [case_id]
    console.rasa.fail = False
    await state.retry_resumes()
    assert await awaiting(console.db) == []
    await state.retry_resumes()  # nothing left to resume: no more requests
    assert [r["body"] for r in console.rasa.requests] == [{"name": "action_handoff_resume"}] * 3


async def test_failed_resumes_are_retried_in_the_background_even_after_a_restart(
    db: Database, fake_rasa: tuple[FakeRasa, str], tracker_db: Path
) -> None:
    rasa, url = fake_rasa
    member = await staff.create_staff(db, "sam", "张主管", PASSWORD, "supervisor")
    case_id = await add_case(db, CONVERSATION)
    server, app = await start_console(db, rasa, url, resume_retry_seconds=3600)
    client = TestClient(server)
    try:
        await client.start_server()
        assert (await sign_in(client, member.username, PASSWORD)).status == 303
        token = (await (await client.get("/api/me")).json())["csrf_token"]
        rasa.fail = True
        response = await client.post(
            f"/api/cases/{case_id}/close",
            json={"outcome": "other"},
            headers={"X-CSRF-Token": token},
        )
        data = await response.json()
        assert response.status == 200 and data["resumed"] is False and "自动重试" in data["warning"]
    finally:
        await client.close()  # the console stops before it could retry

    rasa.fail = False
    server, app = await start_console(db, rasa, url, resume_retry_seconds=0.05)
    client = TestClient(server)
    try:
        await client.start_server()
        for _ in range(100):
            if not await awaiting(db):
                break
            await asyncio.sleep(0.05)
        assert await awaiting(db) == []
        assert rasa.requests[-1]["body"] == {"name": "action_handoff_resume"}
    finally:
        await client.close()


async def test_two_consoles_resuming_one_conversation_resume_it_once(
    console: Console, fake_rasa: tuple[FakeRasa, str]
) -> None:
    """Consoles run side by side on one database: one's retry must not resume a
    conversation that another's close is resuming at the same moment."""
    rasa, url = fake_rasa
    case_id, alice, token = await claimed_case(console)
    rasa.fail = True
    await alice.post(
        f"/api/cases/{case_id}/close", json={"outcome": "other"}, headers={"X-CSRF-Token": token}
    )
    rasa.fail, rasa.delay = False, 0.3
    other_server, other_app = await start_console(console.db, rasa, url)
    try:
        (case,) = await resume.awaiting_resume(console.db, T0 - timedelta(days=3650))
        first, second = await asyncio.gather(
            console.app[CONSOLE].resume(case), other_app[CONSOLE].resume(case)
        )
    finally:
        await other_server.close()
    assert first is second is True
    assert len(rasa.requests) == 2  # the failed close, then exactly one resume
    assert await awaiting(console.db) == []


async def test_a_resume_is_dropped_when_a_new_case_took_the_conversation(
    console: Console,
) -> None:
    case_id, alice, token = await claimed_case(console)
    console.rasa.fail = True
    await alice.post(
        f"/api/cases/{case_id}/close", json={"outcome": "other"}, headers={"X-CSRF-Token": token}
    )
    await add_case(console.db, CONVERSATION, reason="distress", priority=1)
    console.rasa.fail = False
    await console.app[CONSOLE].retry_resumes()
    assert len(console.rasa.requests) == 1  # only the failed first attempt


async def test_negotiators_close_only_what_they_hold(console: Console) -> None:
    waiting = await add_case(console.db, "c-waiting")
    alice, token = await console.signed_in("alice")
    response = await alice.post(
        f"/api/cases/{waiting}/close", json={"outcome": "other"}, headers={"X-CSRF-Token": token}
    )
    assert response.status == 409
    assert (await case_row(console.db, waiting)).status == "waiting"
    sam, sam_token = await console.signed_in("sam")
    response = await sam.post(
        f"/api/cases/{waiting}/close",
        json={"outcome": "dispute_logged"},
        headers={"X-CSRF-Token": sam_token},
    )
    assert response.status == 200


# --- the queue ------------------------------------------------------------------------------


async def test_queue_is_ordered_by_priority_then_age(console: Console) -> None:
    ids = {
        "late-3": await add_case(console.db, "a", priority=3, created_at=T0),
        "urgent": await add_case(console.db, "b", reason="distress", priority=1, created_at=T0),
        "early-3": await add_case(console.db, "c", priority=3, created_at=T0 - timedelta(hours=1)),
        "two": await add_case(
            console.db, "d", reason="complaint", priority=2, created_at=T0 + timedelta(hours=1)
        ),
    }
    expected = [ids["urgent"], ids["two"], ids["early-3"], ids["late-3"]]
    alice, _ = await console.signed_in("alice")
    data = await (await alice.get("/api/cases")).json()
    assert [c["id"] for c in data["cases"]] == expected
    first = data["cases"][0]
    assert first["reason_label"] == "情绪危机" and first["status_label"] == "等待中"
    assert first["waited_seconds"] > 0 and "天" in first["waited"]
    html = await (await alice.get("/")).text()
    references = re.findall(r'href="/cases/(\d+)"', html)
    assert [int(r) for r in references] == expected
    assert "情绪危机" in html and "投诉" in html
    assert 'data-poll="/api/cases"' in html and "/static/console.js" in html


# --- bad input ------------------------------------------------------------------------------


async def test_bad_input_gets_a_clear_error_and_changes_nothing(console: Console) -> None:
    case_id, alice, token = await claimed_case(console)
    headers = {"X-CSRF-Token": token}
    huge = await alice.post(
        f"/api/cases/{case_id}/reply",
        data=json.dumps({"text": "x" * 70_000}),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status == 413
    assert (await huge.json())["error"].startswith("请求内容过大")
    huge_page = await alice.post(
        f"/cases/{case_id}/reply", data={"text": "x" * 70_000, "csrf_token": token}
    )
    assert huge_page.status == 413
    not_json = await alice.post(
        f"/api/cases/{case_id}/reply",
        data="text=hello",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert not_json.status == 400 and await not_json.json() == {"error": "请求内容须为 JSON"}
    bad_utf8 = await alice.post(f"/api/cases/{case_id}/close", data=b"\xff\xfe", headers=headers)
    assert bad_utf8.status == 400
    a_list = await alice.post(f"/api/cases/{case_id}/close", json=["other"], headers=headers)
    assert a_list.status == 400 and await a_list.json() == {"error": "请求内容须为 JSON 对象"}
    for path in ("/api/cases/abc", "/api/cases/1.5", "/api/cases/-1", "/api/cases/99999999999"):
        response = await alice.get(path)
        assert response.status == 404, path
        assert "error" in await response.json()
    response = await alice.post("/api/cases/abc/claim", headers=headers)
    assert response.status == 404
    page = await alice.get("/cases/abc")
    assert page.status == 404 and "页面不存在" in await page.text()
    for query in ("after=-1", "after=abc", "after=1e3"):
        response = await alice.get(f"/api/cases/{case_id}/transcript?{query}")
        assert response.status == 400
    assert (await alice.get("/api/cases?status=bogus")).status == 400
    assert console.rasa.requests == []
    assert (await case_row(console.db, case_id)).status == "claimed"
    assert "handoff_reply" not in await actions(console.db)


# --- what the pages show --------------------------------------------------------------------


async def test_case_page_shows_summary_and_transcript_escaped(console: Console) -> None:
    summary = {
        "circumstances": {"hardship_detail": HOSTILE, "monthly_income": "3000.00"},
        "recent_messages": [{"text": HOSTILE, "intent": "inform"}],
        "offers_shown": [{"plan": "personalized_installment", "monthly_amount": "812.50"}],
        "custom_key": True,
    }
    case_id = await add_case(console.db, CONVERSATION, summary=summary)
    alice, _ = await console.signed_in("alice")
    response = await alice.get(f"/cases/{case_id}")
    assert response.status == 200
    html = await response.text()
    assert HOSTILE not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # 2 in summary, 1 in transcript
    for text in (
        "财务状况",
        "债务人最近的消息",
        "已展示的方案",
        "custom_key",
        "812.50",
        "正在为您转接人工",
    ):
        assert text in html, text
    assert "认领此案件" in html and "回复债务人" not in html
    assert "Content-Security-Policy" in response.headers

    transcript = await (await alice.get(f"/api/cases/{case_id}/transcript")).json()
    assert [(e["from"], e["text"]) for e in transcript["events"]] == [
        ("debtor", HOSTILE),
        ("assistant", "正在为您转接人工"),
    ]
    last = transcript["events"][-1]["id"]
    later = await alice.get(f"/api/cases/{case_id}/transcript?after={last}")
    assert (await later.json())["events"] == []
    data = await (await alice.get(f"/api/cases/{case_id}")).json()
    assert data["case"]["summary"] == summary


async def test_the_holder_sees_the_reply_box_and_close_form(console: Console) -> None:
    case_id, alice, _ = await claimed_case(console)
    html = await (await alice.get(f"/cases/{case_id}")).text()
    assert f'action="/cases/{case_id}/reply"' in html and f'action="/cases/{case_id}/close"' in html
    for label in ("已达成还款方案", "承诺还款", "转交催收部门", "已登记异议", "未能联系上", "其他"):
        assert label in html


async def test_an_unreadable_transcript_is_a_warning_not_an_error(
    console: Console, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRACKER_DB", str(tmp_path / "absent.db"))
    case_id = await add_case(console.db, CONVERSATION)
    alice, _ = await console.signed_in("alice")
    page = await alice.get(f"/cases/{case_id}")
    assert page.status == 200 and "对话记录暂时无法读取" in await page.text()
    response = await alice.get(f"/api/cases/{case_id}/transcript")
    assert response.status == 503


async def test_supervisors_acknowledge_referrals(console: Console) -> None:
    async with console.db.session() as session:
        debtor_id = (await session.execute(sa.text("SELECT min(id) FROM debtors"))).scalar_one()
        referral = CollectionsReferral(
            reference="CS20250601-ABCDEF",
            conversation_id="c-ref",
            channel="rest",
            debtor_id=debtor_id,
            reason="refused_payment",
            summary=json.dumps({"last_message": HOSTILE}),
        )
        session.add(referral)
        await session.commit()
    sam, token = await console.signed_in("sam")
    html = await (await sam.get("/referrals")).text()
    assert "CS20250601-ABCDEF" in html and "拒绝还款" in html and HOSTILE not in html
    listed = await (await sam.get("/api/referrals")).json()
    assert [r["reference"] for r in listed["referrals"]] == ["CS20250601-ABCDEF"]
    response = await sam.post(
        f"/referrals/{referral.id}/acknowledge", data={"csrf_token": token}, allow_redirects=False
    )
    assert (
        response.status == 303 and response.headers["Location"] == "/referrals?notice=acknowledged"
    )
    again = await sam.post(
        f"/api/referrals/{referral.id}/acknowledge", headers={"X-CSRF-Token": token}
    )
    assert again.status == 409
    async with console.db.session() as session:
        stored = await session.get(CollectionsReferral, referral.id)
        assert stored is not None and stored.status == "acknowledged"
    alice, alice_token = await console.signed_in("alice")
    refused = await alice.post(
        f"/api/referrals/{referral.id}/acknowledge", headers={"X-CSRF-Token": alice_token}
    )
    assert refused.status == 403


# --- command line ---------------------------------------------------------------------------


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_user_add_creates_a_staff_member(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    env = {"DATABASE_URL": url, "CONSOLE_USER_PASSWORD": PASSWORD}
    assert _run(["bot.store", "upgrade"], env).returncode == 0
    added = _run(
        ["bot.console", "user", "add", "li.na", "--name", "李娜", "--role", "supervisor"], env
    )
    assert added.returncode == 0, added.stderr
    duplicate = _run(
        ["bot.console", "user", "add", "li.na", "--name", "李娜", "--role", "supervisor"], env
    )
    assert duplicate.returncode == 2 and "已存在" in duplicate.stderr
    short = _run(
        ["bot.console", "user", "add", "wang", "--name", "王强", "--role", "negotiator"],
        {**env, "CONSOLE_USER_PASSWORD": "short"},
    )
    assert short.returncode == 2 and "密码至少" in short.stderr
    bad_name = _run(
        ["bot.console", "user", "add", "Wang Qiang", "--name", "王强", "--role", "negotiator"], env
    )
    assert bad_name.returncode == 2 and "用户名" in bad_name.stderr
    bad_role = _run(["bot.console", "user", "add", "wang", "--name", "王强", "--role", "boss"], env)
    assert bad_role.returncode == 2

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT username, display_name, role, password_hash FROM staff_members")
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    username, name, role, password_hash = rows[0]
    assert (username, name, role) == ("li.na", "李娜", "supervisor")
    assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash


async def test_demo_user_is_created_then_gets_a_new_password(db: Database) -> None:
    first = await cli.reset_demo_user(db.url)
    assert await staff.authenticate(db, "demo", first, "127.0.0.1") is not None
    second = await cli.reset_demo_user(db.url)
    assert second != first and len(second) >= 10
    assert await staff.authenticate(db, "demo", first, "127.0.0.1") is None
    member = await staff.authenticate(db, "demo", second, "127.0.0.1")
    assert member is not None and member.role == "supervisor"


def test_cli_serve_refuses_a_short_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "short")
    assert cli.main(["serve"]) == 2


def test_cli_serve_refuses_a_bad_list_of_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found at start, not at the first sign-in (which would fail with a 500)."""
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "10.0.0.1, nginx")
    assert cli.main(["serve"]) == 2
    assert "CONSOLE_TRUSTED_PROXIES" in capsys.readouterr().err


async def test_sessions_signed_with_another_key_are_ignored(
    console: Console, db: Database, fake_rasa: tuple[FakeRasa, str]
) -> None:
    alice, _ = await console.signed_in("alice")
    cookie = alice.session.cookie_jar.filter_cookies(alice.make_url("/"))["console_session"]
    other = create_app(db, rasa_url=fake_rasa[1], rasa_token="", secret_key=b"o" * 32)
    client = TestClient(TestServer(other))
    try:
        await client.start_server()
        response = await client.get(
            "/api/me", headers={"Cookie": f"console_session={cookie.value}"}
        )
        assert response.status == 401
    finally:
        await client.close()


def test_every_refusal_of_the_store_has_a_text_for_staff() -> None:
    assert set(CASE_ERRORS) == set(CASE_ERROR_CODES)
    assert all(CASE_ERRORS.values())


async def test_the_case_page_says_when_the_debtor_reads_traditional(
    console: Console, tracker_db: Path
) -> None:
    case_id, alice, _ = await claimed_case(console)
    page = await (await alice.get(f"/cases/{case_id}")).text()
    assert 'id="reading-script"' not in page
    connection = sqlite3.connect(tracker_db)
    try:
        write_events(
            connection,
            [
                (CONVERSATION, "user", 3, user_event("卡債繳不出來了")),
                (CONVERSATION, "bot", 4, bot_event("我們來看看協商還款", {"script": "zh-Hant-TW"})),
            ],
        )
    finally:
        connection.close()
    page = await (await alice.get(f"/cases/{case_id}")).text()
    assert "该债务人使用繁体字（台湾用语）" in page
    assert "我們來看看協商還款" in page  # the transcript shows what the debtor read
