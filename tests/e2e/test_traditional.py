"""Debtors who write Traditional Chinese get every reply in Traditional, against the stack.

The conversations of `tests/conversations/traditional/` are written in Taiwan
and Hong Kong wording: FAQ, verification, a negotiation to a recorded
agreement, a handoff. Their expected replies are in the script the debtor
gets, and every reply is checked to be in the conversation's script (no
Simplified character in a Traditional conversation, and back to Simplified
after a Simplified message). A staff reply typed in Simplified reaches the
debtor in Traditional, and so does the assistant's message when the case is closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.domain.script import HONG_KONG, SCRIPTS, SIMPLIFIED, TAIWAN, convert, marks
from bot.store.cases import claim_case, close_case
from bot.store.engine import Database
from tests.support.conversations import CONVERSATIONS_DIR, play, reply_text
from tests.support.rasa_api import RestClient, resume, staff_messages, staff_reply, tracker_of
from tests.support.records import add_staff_member, handoff_cases

pytestmark = pytest.mark.e2e

TRADITIONAL = CONVERSATIONS_DIR / "traditional"
STAFF_TEXT = "您好，我是协商专员小李，我们来看看您的情况。"


def check_stored(events: list[dict[str, Any]]) -> None:
    """Every bot message names its script; in Traditional, text and titles hold no
    Simplified-only character and the payloads are the untouched intents."""
    bots = [e for e in events if e["event"] == "bot"]
    assert bots and all(e["metadata"]["script"] in SCRIPTS for e in bots)
    for event in bots:
        buttons = (event.get("data") or {}).get("buttons") or []
        assert all(b["payload"].startswith("/") for b in buttons)
        if event["metadata"]["script"] != SIMPLIFIED:
            texts = [event["text"] or "", *(b["title"] for b in buttons)]
            assert [t for t in texts if marks(t)[1]] == []


@pytest.mark.dialogue
@pytest.mark.parametrize("path", sorted(TRADITIONAL.glob("*.yml")), ids=lambda p: p.stem)
async def test_traditional_conversation(
    client: RestClient, rasa_url: str, path: Path, lift_holds: None
) -> None:
    await play(client, path)
    events = (await tracker_of(rasa_url, client.sender))["events"]
    check_stored(events)
    scripts = [e["metadata"]["script"] for e in events if e["event"] == "bot"]
    if path.stem.startswith("taiwan"):
        # Taiwan wording until the last (Simplified) question.
        assert scripts[0] == TAIWAN and scripts[-1] == SIMPLIFIED


async def test_a_staff_reply_reaches_a_hong_kong_debtor_in_traditional(
    client: RestClient, database_url: str, rasa_url: str
) -> None:
    await play(client, TRADITIONAL / "hong_kong_verification_handoff.yml")
    [case] = handoff_cases(database_url, client.sender)
    db = Database(database_url)
    try:
        staff = await add_staff_member(db, f"e2e-script{case['id']}", "李专员", "negotiator")
        await claim_case(db, case["id"], staff)
        await staff_reply(rasa_url, client.sender, STAFF_TEXT)
        [message] = await staff_messages(rasa_url, client.sender)
        assert message["text"] == convert(STAFF_TEXT, HONG_KONG)
        assert message["text"] == "您好，我是協商專員小李，我們來看看您的情況。"
        assert message["staff"] == "李專員"  # the name shown above it, in the debtor's script
        assert await client.say("好") == []
        await close_case(db, case["id"], staff, "other", "已电话沟通")
    finally:
        await db.dispose()
    resumed = reply_text(await resume(rasa_url, client.sender))
    assert resumed == "人工專員已結束本次服務，現在由智能助手繼續為您服務。還有什麼可以幫您的嗎？"
    stored = [
        e for e in (await tracker_of(rasa_url, client.sender))["events"] if e["event"] == "bot"
    ]
    assert [e["text"] for e in stored if "staff" in e["metadata"]] == [message["text"]]
    assert {e["metadata"]["script"] for e in stored} == {HONG_KONG}
