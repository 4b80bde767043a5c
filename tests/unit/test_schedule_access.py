"""The repayment schedule is shown only to a conversation the database confirms as verified.

Asked for before verification, the schedule is the request answered once the
debtor is verified (`continue_request`); that path too must check the
database, not the slots, as every other disclosure does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, FollowupAction, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.routing import ActionStartVerification, ActionVerifyIdentity
from actions.schedule import ActionShowSchedule
from tests.support.actions import action_context

ZHANG_WEI = {"debtor_name": "张伟", "id_last4": "1234", "phone": "13800138000"}
SCHEDULE_ANSWERS = {"utter_schedule", "utter_no_agreement"}


@pytest.fixture
def seeded_database(seeded_url: str) -> Iterator[str]:
    with action_context(seeded_url):
        yield seeded_url


def tracker(
    text: str, slots: dict[str, Any], sender: str, intent: str = "ask_repayment_plan"
) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots=slots,
        latest_message={"text": text, "intent": {"name": intent}, "entities": []},
        events=[ActionExecuted("action_listen"), UserUttered(text, {"name": intent}, [])],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [message["response"] for message in dispatcher.messages]


async def _debtor_id(sender: str) -> int:
    events = await ActionVerifyIdentity().run(
        CollectingDispatcher(), tracker("", ZHANG_WEI, sender, intent="inform"), {}
    )
    return int(next(e["value"] for e in events if e.get("name") == "debtor_id"))


async def test_forged_verified_slots_with_a_pending_schedule_disclose_nothing(
    seeded_database: str,
) -> None:
    """Slots claiming 张伟 (verified elsewhere), a schedule pending: verification, no plan."""
    debtor = await _debtor_id("zhang-wei-himself")
    forged = {"verified": True, "debtor_id": debtor, "pending_request": "ask_repayment_plan"}
    dispatcher = CollectingDispatcher()
    events = await ActionStartVerification().run(
        dispatcher, tracker("查看还款计划", forged, "forger"), {}
    )
    assert not SCHEDULE_ANSWERS & set(responses(dispatcher))
    assert responses(dispatcher) == ["utter_verification_intro"]
    assert events[-2:] == [
        SlotSet("pending_request", "ask_repayment_plan"),
        FollowupAction("verification_form"),
    ]
    # Asked directly, the same forged slots get verification too.
    dispatcher = CollectingDispatcher()
    await ActionShowSchedule().run(dispatcher, tracker("还款计划", forged, "forger"), {})
    assert responses(dispatcher) == ["utter_verification_intro"]


async def test_the_verified_conversation_gets_its_schedule_after_verifying(
    seeded_database: str,
) -> None:
    """The request made before verification is answered once the database confirms it."""
    dispatcher = CollectingDispatcher()
    events = await ActionVerifyIdentity().run(
        dispatcher,
        tracker("", {**ZHANG_WEI, "pending_request": "ask_repayment_plan"}, "zhang", "inform"),
        {},
    )
    assert responses(dispatcher)[0] == "utter_verified"
    # 张伟 has no agreement yet in the demo data: that is what he is told.
    assert responses(dispatcher)[1:] == ["utter_no_agreement"]
    assert SlotSet("verified", True) in events
