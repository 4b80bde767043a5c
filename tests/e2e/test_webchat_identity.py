"""The web chat page's secret is its session token, not the conversation id everyone sees.

On the real stack: the page gets a fresh token on every connection and keeps
its conversation and its history across the refresh; the token never appears
in a URL the page requests nor in the tracker. An expired token, and the
conversation id that the stores and the staff see (a "stolen" id), open no
conversation: the socket.io channel gives a new one, the missed-replies
endpoint answers 401, and the REST channel refuses the id. The page keeps
showing its history when its token had expired, and what the debtor typed to
verify is stored masked.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bot.rasa_ext.channels.webchat_session import SessionTokens
from bot.tools.stack import webchat_session_key
from tests.support.browser import eventually, phone_chromium
from tests.support.rasa_api import staff_reply, tracker_of

pytestmark = pytest.mark.e2e

STORE_KEY = "debt-webchat.v1"

READ_PAGE = """
const root = document.querySelector('deep-chat')?.shadowRoot;
return {
  state: JSON.parse(localStorage.getItem(arguments[0]) || '{}'),
  status: document.getElementById('status').textContent,
  bubbles: root ? [...root.querySelectorAll('.bot-message')].map((e) => e.innerText) : [],
  notes: root ? [...root.querySelectorAll('.session-note')].map((e) => e.innerText) : [],
  requested: performance.getEntries().map((e) => e.name),
};
"""


def server_tokens(hours_ago: float = 0) -> SessionTokens:
    """The stack's tokens (its key, as `Stack` sets it), on a clock `hours_ago` behind."""
    key = os.environ.get("WEBCHAT_SESSION_KEY") or webchat_session_key()
    return SessionTokens(key.encode(), clock=lambda: time.time() - hours_ago * 3600)


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[WebDriver]:
    with phone_chromium(tmp_path / "chromium") as driver:
        yield driver


class Page:
    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def read(self) -> dict[str, Any]:
        page: dict[str, Any] = self.driver.execute_script(READ_PAGE, STORE_KEY)
        return page

    def wait_ready(self) -> None:
        eventually(lambda: self.read()["status"] == "在线", "the page to connect")

    def type(self, text: str) -> None:
        root = self.driver.find_element(By.ID, "chat").shadow_root
        box = root.find_element(By.CSS_SELECTOR, "#text-input")
        box.click()
        box.send_keys(text)
        root.find_element(By.CSS_SELECTOR, ".input-button").click()

    def bot_texts(self) -> list[str]:
        return [m["text"] for m in self.read()["state"].get("messages", []) if m["role"] == "ai"]

    def reply_to(self, text: str, contains: str) -> str:
        """The assistant's texts after `text`, once they hold `contains`."""
        before = len(self.bot_texts())
        self.type(text)

        def arrived() -> str | None:
            said = "\n".join(self.bot_texts()[before:])
            return said if contains in said else None

        return eventually(arrived, f"a reply to {text!r} with {contains!r}", timeout=30)


async def test_the_page_keeps_its_conversation_and_history_across_a_token_refresh(
    phone: WebDriver, rasa_url: str
) -> None:
    page = Page(phone)
    phone.get(f"{rasa_url}/webhooks/webchat/")
    page.wait_ready()
    first = page.read()["state"]
    token, conversation = first["sessionId"], first["conversationId"]
    assert conversation.startswith("webchat:") and token != conversation
    assert first["expiresAt"] > time.time() * 1000 + 23 * 3600 * 1000
    page.reply_to("逾期会影响征信吗", "征信")
    # He starts to verify: what he types for it is stored masked.
    page.reply_to("我欠了多少钱", "姓名")
    page.reply_to("张伟", "后四位")
    page.reply_to("1234", "手机号")
    shown = page.read()["bubbles"]

    # A reconnection (here a reload) refreshes the token: same conversation, same history.
    await asyncio.sleep(1.1)  # tokens count whole seconds
    phone.refresh()
    page.wait_ready()
    try:
        eventually(lambda: page.read()["bubbles"] == shown, "the history after the refresh")
    except pytest.fail.Exception:
        print("before:", shown, "\nafter:", page.read()["bubbles"])
        raise
    second = page.read()["state"]
    assert second["conversationId"] == conversation
    assert second["sessionId"] != token
    assert second["expiresAt"] > first["expiresAt"]
    assert server_tokens().valid(second["sessionId"])
    stored = [m["text"] for m in second["messages"] if m["role"] == "user"]
    assert "1234" not in stored and "••••" in stored, stored
    # The conversation goes on under the new token.
    page.reply_to("13800138000", "核实成功")
    tracker = await tracker_of(rasa_url, conversation)
    said = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    # (What the tracker keeps of the identity details is not this test's concern.)
    assert said[0] == "逾期会影响征信吗" and len(said) == 5
    # The tokens are in no URL the page asked for, and not in the conversation's record.
    requested = " ".join(page.read()["requested"])
    record = json.dumps(tracker)
    for secret in (token, second["sessionId"]):
        assert secret not in requested and secret not in record
    assert "/rest/staff_messages" not in requested


async def test_an_expired_token_starts_a_new_conversation_and_the_page_keeps_its_history(
    phone: WebDriver, rasa_url: str
) -> None:
    """The page's stored token expired (the device was away for a day): the server
    refuses it; the debtor sees what was said before, a note, and a new conversation."""
    old = server_tokens(hours_ago=25)
    expired = old.issue()
    before = old.read(expired)
    assert before is not None and not server_tokens().valid(expired)
    history = [
        {"role": "user", "text": "你好", "at": 1},
        {"role": "ai", "text": "您好，我是还款协商助手。", "buttons": [], "staff": None, "at": 2},
    ]
    saved = {
        "sessionId": expired,
        "conversationId": before.conversation_id,
        # As the page saw it: the device's clock was a day behind.
        "expiresAt": int(time.time() * 1000) + 3600 * 1000,
        "messages": history,
        "staffAfter": 0,
    }
    page = Page(phone)
    # The device's storage is written from a page of the same origin that does not
    # run the chat (the chat page itself would save its own state over it).
    phone.get(f"{rasa_url}/webhooks/webchat/privacy.js")
    phone.execute_script(
        "localStorage.setItem(arguments[0], JSON.stringify(arguments[1]))", STORE_KEY, saved
    )
    phone.get(f"{rasa_url}/webhooks/webchat/")
    page.wait_ready()

    def settled() -> dict[str, Any] | None:
        # Online first, then the refused token's answer: the history and the note.
        shown = page.read()
        return shown if shown["notes"] and shown["bubbles"] else None

    shown = eventually(settled, "the old history and the note after the refused token")
    assert shown["state"]["conversationId"] != before.conversation_id
    assert shown["state"]["sessionId"] != expired
    assert shown["bubbles"][0].strip() == "您好，我是还款协商助手。"
    assert shown["notes"] == ["此前的会话已过期，以下是新的对话。"]
    page.reply_to("逾期会影响征信吗", "征信")
    tracker = await tracker_of(rasa_url, shown["state"]["conversationId"])
    assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == ["逾期会影响征信吗"]


@pytest.fixture
async def debtor(rasa_url: str) -> AsyncIterator[dict[str, Any]]:
    """A web chat debtor who has said something: their token and conversation id."""
    client, confirm, replies = await _connect(rasa_url, None)
    await client.emit("user_uttered", {"message": "你好", "session_id": confirm["session_id"]})
    await asyncio.wait_for(replies.get(), 30)
    await client.disconnect()
    yield confirm


async def _connect(
    rasa_url: str, session_id: str | None
) -> tuple[socketio.AsyncClient, dict[str, Any], asyncio.Queue[Any]]:
    """A socket.io client that asked for `session_id`; what it was granted; its events.

    (Over long-polling a client takes up to the ping interval, 25 s, to disconnect.)
    """
    client = socketio.AsyncClient(reconnection=False)
    loop = asyncio.get_running_loop()
    confirmed: asyncio.Future[dict[str, Any]] = loop.create_future()
    events: asyncio.Queue[Any] = asyncio.Queue()
    client.on("session_confirm", lambda data: confirmed.done() or confirmed.set_result(data))
    client.on("bot_uttered", lambda data: events.put_nowait(data))
    client.on("session_expired", lambda data: events.put_nowait("session_expired"))
    # Long-polling: the aiohttp of Rasa 3.6's lock has no client websocket
    # timeout class, which python-engineio's websocket client needs.
    await client.connect(rasa_url, transports=["polling"], socketio_path="/socket.io")
    await client.emit("session_request", {"session_id": session_id})
    return client, await asyncio.wait_for(confirmed, 10), events


async def _user_messages(rasa_url: str, conversation: str) -> list[str]:
    tracker = await tracker_of(rasa_url, conversation)
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


async def test_a_stolen_conversation_id_opens_nothing(
    rasa_url: str, debtor: dict[str, Any]
) -> None:
    """The id the stores, the audit log and the staff console show is no credential."""
    conversation = debtor["conversation_id"]
    thief, granted, events = await _connect(rasa_url, conversation)
    try:
        assert granted["conversation_id"] != conversation
        await thief.emit(
            "user_uttered", {"message": "我是本人，查欠款", "session_id": conversation}
        )
        assert await asyncio.wait_for(events.get(), 10) == "session_expired"
    finally:
        await thief.disconnect()
    # A staff reply to the conversation stays out of the thief's reach.
    await staff_reply(rasa_url, conversation, "您好，我是李专员。")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{rasa_url}/webhooks/webchat/staff_messages", json={"session_id": conversation}
        ) as response:
            assert response.status == 401
            assert "李专员" not in await response.text()
        async with session.post(
            f"{rasa_url}/webhooks/webchat/staff_messages", json={"session_id": debtor["session_id"]}
        ) as response:
            assert response.status == 200
            assert [m["text"] for m in await response.json()] == ["您好，我是李专员。"]
        # Nor can the REST channel write into it, or read it.
        async with session.post(
            f"{rasa_url}/webhooks/rest/webhook", json={"sender": conversation, "message": "你好"}
        ) as response:
            assert response.status == 400
        async with session.get(
            f"{rasa_url}/webhooks/rest/staff_messages", params={"sender": conversation}
        ) as response:
            assert response.status == 400
    assert await _user_messages(rasa_url, conversation) == ["你好"]


async def test_an_expired_token_opens_nothing(rasa_url: str) -> None:
    """A day-old token of the same key: refused for messages and replies alike."""
    yesterday = server_tokens(hours_ago=25)
    expired = yesterday.issue()
    session = yesterday.read(expired)
    assert session is not None
    client, granted, events = await _connect(rasa_url, expired)
    try:
        assert granted["conversation_id"] != session.conversation_id
        await client.emit("user_uttered", {"message": "在吗", "session_id": expired})
        assert await asyncio.wait_for(events.get(), 10) == "session_expired"
        # The fresh token it was given works.
        await client.emit("user_uttered", {"message": "你好", "session_id": granted["session_id"]})
        assert (await asyncio.wait_for(events.get(), 30))["text"]
    finally:
        await client.disconnect()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{rasa_url}/webhooks/webchat/staff_messages", json={"session_id": expired}
        ) as response:
            assert response.status == 401
    assert await _user_messages(rasa_url, granted["conversation_id"]) == ["你好"]
    assert await _user_messages(rasa_url, session.conversation_id) == []
