"""What staff read (cases, transcripts, the audit log) shows verification secrets masked only.

A case opened in the turn the debtor typed their details (a lock-out) quotes
that turn as it is still in flight: the summary masks it. Rows stored before
the tracker store masked them still hold what the debtor typed: the
transcript masks them on the way out. An audit entry given a mobile by
mistake keeps it masked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SlotSet, UserUttered

from actions.context import ActionContext
from actions.escalation import case_summary
from bot.store import audit, transcript
from bot.store.engine import Database
from tests.support.actions import action_context
from tests.support.tracker_events import bot_event, make_tracker_db, user_event


@pytest.fixture
def ctx(seeded_url: str) -> Iterator[ActionContext]:
    with action_context(seeded_url) as context:
        yield context


async def test_a_case_opened_in_the_turn_quotes_it_masked(ctx: ActionContext) -> None:
    text = "我叫张伟 1234 13800138000"
    events = [
        ActionExecuted("action_listen"),
        UserUttered("我欠多少钱", {"intent": {"name": "ask_account_status"}}),
        ActionExecuted("action_listen"),
        UserUttered(text, {"intent": {"name": "inform"}}),
        SlotSet("id_last4", "1234"),
        SlotSet("phone", "13800138000"),
    ]
    tracker = Tracker("c-1", {}, {"text": text}, events, False, None, None, "action_listen")
    summary, _ = await case_summary(tracker, None, detail=text)
    assert summary["recent_messages"] == [
        {"text": "我欠多少钱", "intent": "ask_account_status"},
        {"text": "我叫张伟 **** 138****8000", "intent": "inform"},
    ]
    assert summary["debtor_words"] == "我叫张伟 **** 138****8000"


@pytest.fixture
async def old_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    said = user_event("我叫张伟，身份证后四位1234，手机13800138000")
    said["parse_data"]["entities"] = [
        {"entity": "id_last4", "value": "1234", "start": 11, "end": 15},
        {"entity": "phone", "value": "13800138000", "start": 18, "end": 29},
    ]
    rows = [
        ("c-1", "user", 1, said),
        ("c-1", "bot", 2, bot_event("核实成功。")),
        ("c-1", "user", 3, user_event("我月收入4000")),
    ]
    path = make_tracker_db(tmp_path / "tracker.db", rows)
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.setenv("TRACKER_DB", str(path))
    yield path
    await transcript.dispose()


async def test_a_transcript_of_old_rows_shows_masked_details(old_tracker: Path) -> None:
    messages = await transcript.transcript("c-1")
    assert [(m["from"], m["text"]) for m in messages] == [
        ("debtor", "我叫张伟，身份证后四位****，手机138****8000"),
        ("assistant", "核实成功。"),
        ("debtor", "我月收入4000"),
    ]


async def test_the_audit_log_keeps_a_mobile_given_by_mistake_masked(seeded_url: str) -> None:
    db = Database(seeded_url)
    try:
        details = {"note": "回拨13800138000", "offer_id": "a13812345678b", "failures": 3}
        await audit.record(db, "bot", "verification_failed", "c-1", None, details)
        [entry] = await audit.entries(db, conversation_id="c-1")
    finally:
        await db.dispose()
    assert dict(entry.details) == {
        "note": "回拨138****8000",
        "offer_id": "a13812345678b",
        "failures": 3,
    }
