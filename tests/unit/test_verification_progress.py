"""Verification over several messages, with the tracker holding masked details only.

The tracker store keeps the ID suffix as `****` and the mobile as `138****8000`,
so each turn after the first sees them masked. These tests play the form's
validation and the check on literal trackers whose slots are what the store
gives back (`redact_slots`), against a real seeded SQLite database: the
details typed earlier come from `bot.store.verification_progress`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, FollowupAction, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.context import ActionContext
from actions.routing import ActionVerifyIdentity
from actions.verification import ActionLeaveVerification, ValidateVerificationForm
from bot.domain.redaction import MASK, redact_slots
from bot.profile import MissingSharedSetting
from bot.store import verification_progress as progress
from bot.store.audit import entries
from bot.store.models import VerificationProgress, utcnow
from tests.support.actions import action_context

DOMAIN: dict[str, Any] = {
    "forms": {"verification_form": {"required_slots": ["debtor_name", "id_last4", "phone"]}},
    "slots": {
        name: {"type": "text", "mappings": [{"type": "from_entity", "entity": name}]}
        for name in ("debtor_name", "id_last4", "phone")
    },
}
RESET = [SlotSet("debtor_name", None), SlotSet("id_last4", None), SlotSet("phone", None)]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server key of the test's own (not the development key file)."""
    monkeypatch.setenv(progress.KEY_VARIABLE, progress.new_key())


@pytest.fixture
def ctx(seeded_url: str) -> Iterator[ActionContext]:
    with action_context(seeded_url) as context:
        yield context


@pytest.fixture
def sender() -> str:
    return f"progress-{uuid.uuid4().hex}"


def tracker(
    sender: str,
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    stored: dict[str, Any] | None = None,
    set_now: dict[str, Any] | None = None,
) -> Tracker:
    """The tracker of one turn: slots as the store kept them, plus those set in the turn."""
    kept = redact_slots(stored or {})
    events = [
        ActionExecuted("action_listen"),
        UserUttered(text, {"name": "inform"}, entities or []),
        *(SlotSet(k, v) for k, v in (set_now or {}).items()),
    ]
    return Tracker(
        sender_id=sender,
        slots={**kept, **(set_now or {})},
        latest_message={"text": text, "intent": {"name": "inform"}, "entities": entities or []},
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": "verification_form"},
        latest_action_name="action_listen",
    )


def entity(text: str, name: str, value: str) -> dict[str, Any]:
    start = text.index(value)
    return {"entity": name, "value": value, "start": start, "end": start + len(value)}


async def validate(turn: Tracker) -> tuple[list[dict[str, Any]], list[str | None]]:
    dispatcher = CollectingDispatcher()
    events = await ValidateVerificationForm().run(dispatcher, turn, DOMAIN)
    return events, [m.get("response") for m in dispatcher.messages]


async def kept_rows(ctx: ActionContext) -> list[tuple[Any, ...]]:
    """The rows of `verification_progress`, as the database holds them."""
    async with ctx.database.session() as session:
        return [
            tuple(row) for row in await session.execute(sa.select(VerificationProgress.__table__))
        ]


async def verify(turn: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await ActionVerifyIdentity().run(dispatcher, turn, {})
    return events, dispatcher.messages


async def test_step_by_step_the_check_gets_what_was_typed(ctx: ActionContext, sender: str) -> None:
    given: dict[str, Any] = {"pending_request": "ask_account_status"}

    events, said = await validate(
        tracker(sender, "张伟", stored=given, set_now={"debtor_name": "张伟"})
    )
    assert (events, said) == ([SlotSet("debtor_name", "张伟")], [])
    given["debtor_name"] = "张伟"

    events, said = await validate(
        tracker(sender, "1234", stored=given, set_now={"id_last4": "1234"})
    )
    assert (events, said) == ([SlotSet("id_last4", "1234")], [])
    given["id_last4"] = "1234"
    assert await progress.recall(ctx.database, sender) == {"id_last4": "1234"}

    text = "13800138000"
    mobile = [entity(text, "phone", text)]
    turn = tracker(sender, text, mobile, stored=given, set_now={"phone": text})
    assert turn.get_slot("id_last4") == MASK  # what the store gave back
    events, said = await validate(turn)
    assert (events, said) == ([SlotSet("phone", text)], [])

    # The form is complete: the check, in the same turn, with the suffix masked.
    events, messages = await verify(
        tracker(sender, text, mobile, stored=given, set_now={"phone": text})
    )
    assert events[:2] == [SlotSet("verified", True), SlotSet("debtor_id", events[1]["value"])]
    assert events[2:] == [*RESET, SlotSet("pending_request", None)]
    assert messages[0]["response"] == "utter_verified"
    assert messages[0]["masked_phone"] == "138****8000"
    assert messages[1]["overdue_total"] == "23,560.00"
    # Nothing typed is kept once the check ran.
    assert await kept_rows(ctx) == []


async def test_a_corrected_mobile_replaces_the_one_kept(ctx: ActionContext, sender: str) -> None:
    given: dict[str, Any] = {"debtor_name": "李娜"}
    first = "手机13900139009"
    events, _ = await validate(
        tracker(
            sender, first, [entity(first, "phone", "13900139009")], given, {"phone": "13900139009"}
        )
    )
    assert events == [SlotSet("phone", "13900139009")]
    given["phone"] = "13900139009"

    fix = "不对，手机号是13900139001"
    events, _ = await validate(
        tracker(sender, fix, [entity(fix, "phone", "13900139001")], given, {"phone": "13900139001"})
    )
    assert events == [SlotSet("phone", "13900139001")]
    given["phone"] = "13900139001"

    events, _ = await validate(tracker(sender, "5678", stored=given, set_now={"id_last4": "5678"}))
    assert events == [SlotSet("id_last4", "5678")]
    events, messages = await verify(
        tracker(sender, "5678", stored=given, set_now={"id_last4": "5678"})
    )
    assert events[0] == SlotSet("verified", True)
    assert messages[0]["masked_phone"] == "139****9001"


async def test_a_failed_attempt_forgets_what_was_typed(ctx: ActionContext, sender: str) -> None:
    await progress.remember(ctx.database, sender, "id_last4", "9999")
    await progress.remember(ctx.database, sender, "phone", "13800138000")
    stored = {"debtor_name": "张伟", "id_last4": "9999", "phone": "13800138000"}

    events, messages = await verify(tracker(sender, "13800138000", stored=stored))

    assert events == RESET
    assert [(m["response"], m["attempts_left"]) for m in messages] == [
        ("utter_verification_mismatch", 2)
    ]
    assert await progress.recall(ctx.database, sender) == {}
    failed = [e for e in await entries(ctx.database, sender) if e.action == "verification_failed"]
    assert [e.details["mobile"] for e in failed] == ["138****8000"]


async def test_a_masked_detail_not_kept_is_asked_for_again(ctx: ActionContext, sender: str) -> None:
    """Given outside the form, or kept too long ago: the form asks for it, without a reproach."""
    stored = {"debtor_name": "张伟", "id_last4": "1234", "phone": "13800138000"}
    prefilled = tracker(sender, "我想查欠款", stored=stored, set_now=redact_slots(stored))

    events, said = await validate(prefilled)

    assert events == [
        SlotSet("debtor_name", "张伟"),
        SlotSet("id_last4", None),
        SlotSet("phone", None),
    ]
    assert said == []
    events, messages = await verify(tracker(sender, "13800138000", stored=stored))
    assert events == [
        SlotSet("id_last4", None),
        SlotSet("phone", None),
        FollowupAction("verification_form"),
    ]
    assert messages == []


async def test_a_masked_detail_kept_stays_given(ctx: ActionContext, sender: str) -> None:
    await progress.remember(ctx.database, sender, "id_last4", "1234")
    stored = {"debtor_name": "张伟", "id_last4": "1234"}
    events, said = await validate(
        tracker(sender, "查欠款", stored=stored, set_now=redact_slots(stored))
    )
    assert (events, said) == ([SlotSet("debtor_name", "张伟"), SlotSet("id_last4", MASK)], [])


async def test_pieces_expire(ctx: ActionContext, sender: str) -> None:
    long_ago = utcnow() - progress.KEEP_FOR - timedelta(seconds=1)
    await progress.remember(ctx.database, sender, "id_last4", "1234", now=long_ago)
    stored = {"debtor_name": "张伟", "id_last4": "1234", "phone": "13800138000"}
    events, _ = await verify(
        tracker(sender, "13800138000", stored=stored, set_now={"phone": "13800138000"})
    )
    assert events == [SlotSet("id_last4", None), FollowupAction("verification_form")]


async def test_leaving_verification_forgets_the_pieces(ctx: ActionContext, sender: str) -> None:
    await progress.remember(ctx.database, sender, "phone", "13800138000")
    events = await ActionLeaveVerification().run(CollectingDispatcher(), tracker(sender), {})
    assert events == [*RESET, SlotSet("pending_request", None), SlotSet("requested_slot", None)]
    assert await progress.recall(ctx.database, sender) == {}


async def test_the_kept_pieces_are_not_readable_in_the_database(
    ctx: ActionContext, sender: str
) -> None:
    text = "我叫张伟，身份证后四位1234，手机13800138000"
    entities = [
        entity(text, "person_name", "张伟"),
        entity(text, "id_last4", "1234"),
        entity(text, "phone", "13800138000"),
    ]
    slots = {"debtor_name": "张伟", "id_last4": "1234", "phone": "13800138000"}
    await validate(tracker(sender, text, entities, set_now=slots))

    assert await progress.recall(ctx.database, sender) == {
        "id_last4": "1234",
        "phone": "13800138000",
    }
    [row] = await kept_rows(ctx)
    assert row[0] == sender
    assert not any("1234" in str(value) or "13800138000" in str(value) for value in row[1:])


def test_a_bad_key_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.KEY_VARIABLE, "not-a-key")
    with pytest.raises(progress.BadVerificationKey, match="VERIFICATION_KEY"):
        progress.seal("c", "id_last4", "1234")


def test_the_scale_profile_needs_the_shared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file per replica would split the cluster: each could not read the others' pieces."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.delenv(progress.KEY_VARIABLE)
    with pytest.raises(MissingSharedSetting, match="VERIFICATION_KEY"):
        progress.cipher()


def test_a_piece_sealed_for_another_conversation_is_not_read() -> None:
    sealed = progress.seal("conversation-a", "phone", "13800138000")
    assert progress.unseal("conversation-a", "phone", sealed) == "13800138000"
    assert progress.unseal("conversation-b", "phone", sealed) is None
    assert progress.unseal("conversation-a", "id_last4", sealed) is None


async def test_an_unknown_piece_is_refused(ctx: ActionContext) -> None:
    with pytest.raises(ValueError, match="unknown piece"):
        await progress.remember(ctx.database, "c", "debtor_name", "张伟")
