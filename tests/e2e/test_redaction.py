"""After verifying on any channel, nothing kept holds a full mobile or an ID suffix typed.

Debtors verify against the running stack over REST, the web chat's socket.io
channel and WeChat (signed and encrypted as WeChat does, replies through the
fake WeChat API): step by step and all at once, with a correction, failed
attempts and a lock-out, each conversation ending with a case for a
negotiator. Then every place that keeps or shows the conversation is searched,
as text, for every mobile number and ID suffix typed: the tracker database
(every table), the application database (every table but the bank's own
`debtors`, which holds the real ones on file), the stack's log files, the
staff console's JSON API for each case, the Rasa HTTP API's tracker and the
audit log. The masked forms and the names are found there instead, so the
search looked at the right rows.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
import sqlalchemy as sa

from bot.console.__main__ import reset_demo_user
from bot.store.audit import entries
from bot.store.engine import Database, sync_url
from bot.tools.stack import Stack
from tests.support.cluster import sign_in
from tests.support.conversations import reply_text
from tests.support.ports import e2e_port
from tests.support.rasa_api import RestClient, assert_conduct, tracker_of
from tests.support.records import handoff_cases, query
from tests.support.wechat_fake import (
    FAKE_PORT,
    FakeInThread,
    FakeWeChatApi,
    WeChatClient,
    http_transport,
    new_openid,
    text_message,
)

pytestmark = pytest.mark.e2e

#: Every mobile number and ID suffix the debtors below type, right or wrong.
TYPED = (
    # 李娜: a wrong mobile corrected, a wrong suffix, then all three at once.
    "13900139009",
    "13900139001",
    "2468",
    "5678",
    # 张伟 on the web chat: a failed attempt at once, then step by step.
    "1357",
    "13800138000",
    "1234",
    # 王芳 on WeChat: step by step with a spaced wrong mobile, then at once.
    "13700137009",
    "4321",
    "13700137002",
    # 刘洋: all three bare, no word saying which is which.
    "8765",
    "13600136003",
    # 陈静: three failures, locked out and handed to a person.
    "1111",
    "2222",
    "3333",
    "13500135004",
)
#: The same mobiles as some debtors type them.
SPACED = ("137 0013 7009",)
#: What must be found instead, and the names (which stay).
MASKED = ("139****9001", "138****8000", "137****7002", "136****6003", "135****5004", "****")
NAMES = ("李娜", "张伟", "王芳", "刘洋", "陈静")


#: The assistant's own example of an ID suffix (utter_invalid_id_last4), also 张伟's.
EXAMPLE = r"(?! (?:或|\\u6216) 123X)"


def _typed(value: str) -> re.Pattern[str]:
    """`value` as typed: not within a longer token, not the tail of a masked mobile
    ("130****5678" shows its last four by design), not the assistant's example."""
    return re.compile(rf"(?<![0-9A-Za-z.*]){re.escape(value)}(?![0-9A-Za-z]){EXAMPLE}", re.I)


def typed_in(text: str) -> list[str]:
    """The values typed to verify that `text` holds."""
    found = [value for value in TYPED if _typed(value).search(text)]
    return found + [value for value in SPACED if value in text]


def around(text: str) -> list[str]:
    """Each finding of `typed_in` with what surrounds it, for the failure message."""
    return [
        text[max(0, match.start() - 120) : match.end() + 40]
        for value in (*TYPED, *SPACED)
        for match in list(_typed(value).finditer(text))[:3]
    ]


def expect(replies: list[str], *words: str) -> None:
    text = "\n".join(replies)
    assert all(word in text for word in words), f"expected {words} in {text!r}"


# --- the channels ---------------------------------------------------------------------------


async def rest_say(client: RestClient, text: str) -> list[str]:
    return [reply_text([reply]) for reply in await client.say(text)]


class WebChat:
    """The web chat page's side of the socket.io channel: one signed session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.token = ""
        self.conversation_id = ""

    async def connect(self) -> None:
        confirmed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.client.on("session_confirm", lambda data: confirmed.set_result(data))
        self.client.on("bot_uttered", lambda message: self.received.put_nowait(message))
        # Long-polling: the aiohttp of Rasa 3.6's lock has no client websocket timeout.
        await self.client.connect(self.url, transports=["polling"], socketio_path="/socket.io")
        await self.client.emit("session_request", {"session_id": None})
        session = await asyncio.wait_for(confirmed, 15)
        self.token, self.conversation_id = session["session_id"], session["conversation_id"]

    async def say(self, text: str) -> list[str]:
        await self.client.emit("user_uttered", {"message": text, "session_id": self.token})
        messages = [await asyncio.wait_for(self.received.get(), 60)]
        while True:
            try:
                messages.append(await asyncio.wait_for(self.received.get(), 2.5))
            except asyncio.TimeoutError:
                break
        assert_conduct(messages)
        return [str(message.get("text") or "") for message in messages]


@pytest.fixture
async def webchat(rasa_url: str) -> AsyncIterator[WebChat]:
    chat = WebChat(rasa_url)
    await chat.connect()
    try:
        yield chat
    finally:
        await chat.client.disconnect()


@pytest.fixture(scope="module")
def wechat_api() -> Iterator[FakeWeChatApi]:
    """The fake WeChat server the stack's WeChat channel talks to (this module's tests only)."""
    with FakeInThread(FakeWeChatApi(), e2e_port(FAKE_PORT, "E2E_WECHAT_PORT")) as fake:
        yield fake


class WeChatFollower:
    """One follower of the official account."""

    def __init__(self, client: WeChatClient, api: FakeWeChatApi) -> None:
        self.client, self.api, self.openid = client, api, new_openid()

    @property
    def sender(self) -> str:
        return f"wechat:{self.openid}"

    async def say(self, text: str) -> list[str]:
        before = len(self.api.sent_to(self.openid))
        reply = await self.client.push(text_message(self.openid, text))
        assert reply.status == 200, reply.body
        texts = [reply.content] if reply.content else []
        if reply.content is None:
            await self.api.wait_for(self.openid, before + 1, timeout=60)
        count = len(self.api.sent_to(self.openid))
        while True:  # later messages of the same answer
            await asyncio.sleep(1.0)
            if len(self.api.sent_to(self.openid)) == count:
                break
            count = len(self.api.sent_to(self.openid))
        return texts + self.api.sent_to(self.openid)[before:count]


@pytest.fixture
async def wechat(rasa_url: str, wechat_api: FakeWeChatApi) -> AsyncIterator[WeChatFollower]:
    async with aiohttp.ClientSession() as session:
        client = WeChatClient(http_transport(session, f"{rasa_url}/webhooks/wechat/"))
        yield WeChatFollower(client, wechat_api)


# --- where the conversation is kept ----------------------------------------------------------


def tracker_database_text(stack: Stack) -> str:
    """Every value of every table of the stack's tracker database (SQLite)."""
    path = Path(stack.config.extra_env["TRACKER_DB"])
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        parts = [
            readable(value)
            for table in tables
            for row in connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            for value in row
            if is_text(value)
        ]
    finally:
        connection.close()
    return "\n".join(parts)


def is_text(value: object) -> bool:
    """Whether a stored value is text a debtor's words could be in (a string or JSON).

    Numbers, dates and flags are row ids, counters and times: in a database that
    other tests filled too, an id can be 1234 without anything typed in it.
    """
    return isinstance(value, (str, dict, list))


def readable(value: object) -> str:
    """A stored value as text; JSON (Rasa writes it with `\\u` escapes) with its characters."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.dumps(json.loads(value), ensure_ascii=False)
        except ValueError:
            pass
    return str(value)


def application_database_text(database_url: str) -> tuple[str, set[str]]:
    """Every value of every table but `debtors`, as text, and the tables read."""
    engine = sa.create_engine(sync_url(database_url), future=True)
    try:
        metadata = sa.MetaData()
        metadata.reflect(bind=engine)
        tables = [table for table in metadata.sorted_tables if table.name != "debtors"]
        with engine.connect() as connection:
            parts = [
                readable(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                for table in tables
                for row in connection.execute(sa.select(table))
                for value in row
                if is_text(value)
            ]
    finally:
        engine.dispose()
    return "\n".join(parts), {table.name for table in tables}


def log_text(stack: Stack) -> str:
    return "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(stack.config.log_dir.glob("*.log"))
    )


async def console_text(console: str, database_url: str, case_ids: list[int]) -> str:
    """What the console's JSON API says of the queue and of each case and its transcript."""
    password = await reset_demo_user(database_url)
    parts = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
        await sign_in(staff, console, password)
        paths = ["/api/cases"]
        paths += [
            p for case in case_ids for p in (f"/api/cases/{case}", f"/api/cases/{case}/transcript")
        ]
        for path in paths:
            async with staff.get(console + path) as response:
                assert response.status == 200, (path, await response.text())
                parts.append(json.dumps(await response.json(), ensure_ascii=False))
    return "\n".join(parts)


async def audit_text(database_url: str, conversations: list[str]) -> str:
    db = Database(database_url)
    try:
        found = [entry for c in conversations for entry in await entries(db, conversation_id=c)]
    finally:
        await db.dispose()
    return "\n".join(
        json.dumps({"action": e.action, **e.details}, ensure_ascii=False, default=str)
        for e in found
    )


async def rasa_api_text(rasa_url: str, conversations: list[str]) -> str:
    trackers = [await tracker_of(rasa_url, conversation) for conversation in conversations]
    return json.dumps(trackers, ensure_ascii=False)


# --- the test ---------------------------------------------------------------------------------


async def test_no_verification_secret_is_kept_anywhere(
    client: RestClient,
    rasa_url: str,
    webchat: WebChat,
    wechat: WeChatFollower,
    database_url: str,
    console_url: str,
    session_stack: Stack | None,
) -> None:
    if session_stack is None:
        pytest.fail("this test reads the stack's logs and tracker database: unset E2E_RASA_URL")
    started = time.monotonic()
    conversations: list[str] = []

    # REST, 李娜: step by step, a mobile corrected, a wrong suffix, then all three at once.
    expect(await rest_say(client, "帮我查查欠款"), "姓名")
    expect(await rest_say(client, "我叫李娜"), "身份证号的后四位")
    expect(await rest_say(client, "手机13900139009"), "身份证号的后四位")
    expect(await rest_say(client, "不对，手机号是13900139001"), "身份证号的后四位")
    expect(await rest_say(client, "2468"), "未能通过")
    expect(
        await rest_say(client, "我叫李娜，身份证后四位5678，手机13900139001"),
        "核实成功",
        "139****9001",
    )
    expect(await rest_say(client, "我要转人工"), "案件编号")
    conversations.append(client.sender)

    # Web chat, 张伟: a failed attempt in one message, then step by step.
    expect(await webchat.say("我欠多少钱"), "姓名")
    expect(await webchat.say("我叫张伟，身份证后四位1357，手机13800138000"), "未能通过")
    expect(await webchat.say("张伟"), "身份证号的后四位")
    expect(await webchat.say("1234"), "手机号")
    expect(await webchat.say("13800138000"), "核实成功", "138****8000")
    expect(await webchat.say("我要转人工"), "案件编号")
    conversations.append(webchat.conversation_id)

    # WeChat, 王芳: step by step ending in a wrong (spaced) mobile, then all at once.
    expect(await wechat.say("查一下我的欠款"), "姓名")
    expect(await wechat.say("王芳"), "身份证号的后四位")
    expect(await wechat.say("4321"), "手机号")
    expect(await wechat.say("137 0013 7009"), "未能通过")
    expect(await wechat.say("我是王芳 身份证尾号4321 手机13700137002"), "核实成功", "137****7002")
    expect(await wechat.say("转人工"), "案件编号")
    conversations.append(wechat.sender)

    # REST, 刘洋: the three details bare in one message.
    async with aiohttp.ClientSession() as session:
        liu = RestClient(session, rasa_url)
        expect(await rest_say(liu, "查询一下我的欠款金额"), "姓名")
        expect(await rest_say(liu, "刘洋 8765 13600136003"), "核实成功", "136****6003")
        expect(await rest_say(liu, "我要转人工"), "案件编号")
        conversations.append(liu.sender)

        # REST, 陈静: three failures lock the conversation and hand it to a person.
        chen = RestClient(session, rasa_url)
        expect(await rest_say(chen, "我欠多少钱"), "姓名")
        for suffix in ("1111", "2222"):
            expect(
                await rest_say(chen, f"我叫陈静，身份证后四位{suffix}，手机13500135004"), "未能通过"
            )
        expect(await rest_say(chen, "我叫陈静，身份证后四位3333，手机13500135004"), "案件编号")
        conversations.append(chen.sender)
    played = time.monotonic() - started

    cases = [case for c in conversations for case in handoff_cases(database_url, c)]
    assert len(cases) == len(conversations), cases
    tracker = tracker_database_text(session_stack)
    application, tables = application_database_text(database_url)
    assert {"handoff_cases", "audit_log", "verification_progress"} <= tables
    places = {
        "tracker database": tracker,
        "application database": application,
        "logs": log_text(session_stack),
        "console API": await console_text(console_url, database_url, [c["id"] for c in cases]),
        "Rasa HTTP API": await rasa_api_text(rasa_url, conversations),
        "audit log": await audit_text(database_url, conversations),
    }
    leaks = {place: around(text) for place, text in places.items() if typed_in(text)}
    assert leaks == {}, f"typed verification details found: {leaks}"

    # The search read the conversations: their masked details and names are there.
    for place in ("tracker database", "console API", "Rasa HTTP API"):
        assert all(masked in places[place] for masked in MASKED), place
        assert all(name in places[place] for name in NAMES), place
    # The lock-out's case quotes the failed attempts, masked.
    summaries = json.dumps([json.loads(c["summary"]) for c in cases], ensure_ascii=False)
    assert "135****5004" in summaries
    # No conversation left a piece behind once its check ran.
    kept = query(database_url, "SELECT conversation_id FROM verification_progress")
    assert {row["conversation_id"] for row in kept} & set(conversations) == set()
    print(f"\n{sum(len(v) for v in places.values())} characters searched; played in {played:.0f} s")


def test_typed_in_finds_only_whole_values() -> None:
    """The search itself: a value inside a longer number or a hash is not a finding."""
    assert typed_in("手机13900139001，尾号5678") == ["13900139001", "5678"]
    assert typed_in("13900139001234 $argon2$abc1234def 2026-12-03 14:00:00.123412") == []
    assert typed_in(urllib.parse.quote("137 0013 7009")) == []
    assert typed_in("例如 1234 或 123X。") == []
    assert typed_in(json.dumps("例如 1234 或 123X")) == []
