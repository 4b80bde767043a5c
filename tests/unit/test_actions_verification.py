"""Verification actions on literal trackers, against a real seeded SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ConversationPaused,
    FollowupAction,
    SlotSet,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.account import ActionAccountStatus
from actions.routing import ActionStartVerification, ActionVerifyIdentity
from actions.verification import ValidateVerificationForm, last4_from, mobile_from, name_from
from tests.support.actions import action_context

DOMAIN: dict[str, Any] = {
    "forms": {"verification_form": {"required_slots": ["debtor_name", "id_last4", "phone"]}},
    "slots": {
        name: {"type": "text", "mappings": [{"type": "from_entity", "entity": name}]}
        for name in ("debtor_name", "id_last4", "phone")
    },
}


@pytest.fixture
def seeded_database(seeded_url: str) -> Iterator[str]:
    """Actions run against this test's own seeded database."""
    with action_context(seeded_url):
        yield seeded_url


def tracker(
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    intent: str = "inform",
    set_now: dict[str, Any] | None = None,
    sender: str = "conversation-1",
) -> Tracker:
    events = [
        ActionExecuted("action_listen"),
        UserUttered(text, {"name": intent}, entities or []),
        *(SlotSet(k, v) for k, v in (set_now or {}).items()),
    ]
    return Tracker(
        sender_id=sender,
        slots={**(slots or {}), **(set_now or {})},
        latest_message={"text": text, "intent": {"name": intent}, "entities": entities or []},
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": "verification_form"},
        latest_action_name="action_listen",
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("张伟", "张伟"),
        ("我叫李娜。", "李娜"),
        ("本人姓名：陈静", "陈静"),
        ("我叫張偉", "张伟"),
        ("'; DROP TABLE x; --", None),
    ],
)
def test_name_from_typed_text(typed: str, expected: str | None) -> None:
    assert name_from(typed, tracker(typed)) == expected


def test_a_long_run_of_characters_is_not_a_name_even_with_an_entity() -> None:
    text = "张" * 200
    entities = [{"entity": "person_name", "value": "张张", "start": 0, "end": 2}]
    assert name_from("张张", tracker(text, entities)) is None


def test_name_prefers_the_extracted_entity() -> None:
    entities = [{"entity": "person_name", "value": "王芳", "start": 2, "end": 4}]
    assert name_from("我是王芳呀", tracker("我是王芳呀", entities)) == "王芳"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("1234", "1234"),
        ("后四位是123x", "123X"),
        ("110101199003071234", "1234"),
        ("不对，手机号是13900139001", None),
        ("卡号12345678905678", None),
        ("12a4", None),
        ("", None),
    ],
)
def test_last4_from_typed_text(typed: str, expected: str | None) -> None:
    assert last4_from(typed, tracker(typed)) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("13800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("+86 13800138000", "13800138000"),
        ("1380013800", None),
        ("<b>13800138000", "13800138000"),
        ("电话号码" * 2000, None),
    ],
)
def test_mobile_from_typed_text(typed: str, expected: str | None) -> None:
    assert mobile_from(typed, tracker(typed)) == expected


async def test_form_rejects_a_bad_mobile_and_says_what_is_expected() -> None:
    dispatcher = CollectingDispatcher()
    events = await ValidateVerificationForm().run(
        dispatcher,
        tracker("1380013800", set_now={"phone": "1380013800"}),
        DOMAIN,
    )
    assert events == [SlotSet("phone", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_invalid_phone"]


async def test_form_accepts_all_three_in_one_message(seeded_database: str) -> None:
    text = "我叫张伟，身份证后四位1234，手机13800138000"
    entities = [
        {"entity": "person_name", "value": "张伟", "start": 2, "end": 4},
        {"entity": "id_last4", "value": "1234", "start": 11, "end": 15},
        {"entity": "phone", "value": "13800138000", "start": 18, "end": 29},
    ]
    slots = {"debtor_name": "张伟", "id_last4": "1234", "phone": "13800138000"}
    dispatcher = CollectingDispatcher()
    events = await ValidateVerificationForm().run(
        dispatcher, tracker(text, entities, set_now=slots), DOMAIN
    )
    assert events == [
        SlotSet("debtor_name", "张伟"),
        SlotSet("id_last4", "1234"),
        SlotSet("phone", "13800138000"),
    ]
    assert dispatcher.messages == []


async def test_verified_debtor_hears_the_status_asked_for(seeded_database: str) -> None:
    slots = {
        "debtor_name": "张伟",
        "id_last4": "1234",
        "phone": "13800138000",
        "pending_request": "ask_account_status",
    }
    dispatcher = CollectingDispatcher()
    events = await ActionVerifyIdentity().run(dispatcher, tracker(slots=slots), {})
    assert events[0] == SlotSet("verified", True)
    assert events[1]["name"] == "debtor_id" and events[1]["value"] is not None
    assert events[2:] == [
        SlotSet("debtor_name", None),
        SlotSet("id_last4", None),
        SlotSet("phone", None),
        SlotSet("pending_request", None),
    ]
    responses = [m["response"] for m in dispatcher.messages]
    assert responses == [
        "utter_verified",
        "utter_account_status_credit_card",
        "utter_account_next_steps",
    ]
    assert dispatcher.messages[0]["masked_phone"] == "138****8000"
    status = dispatcher.messages[1]
    assert (status["overdue_total"], status["principal"], status["days_past_due"]) == (
        "23,560.00",
        "20,000.00",
        45,
    )


async def test_mismatch_clears_the_details_and_asks_again(seeded_database: str) -> None:
    slots = {"debtor_name": "张伟", "id_last4": "9999", "phone": "13800138000"}
    dispatcher = CollectingDispatcher()
    events = await ActionVerifyIdentity().run(dispatcher, tracker(slots=slots), {})
    assert events == [
        SlotSet("debtor_name", None),
        SlotSet("id_last4", None),
        SlotSet("phone", None),
    ]
    assert dispatcher.messages[0]["response"] == "utter_verification_mismatch"
    assert dispatcher.messages[0]["attempts_left"] == 2


async def test_status_before_verification_starts_verification(seeded_database: str) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAccountStatus().run(dispatcher, tracker("我欠多少钱"), {})
    assert events == [
        SlotSet("pending_request", "ask_account_status"),
        FollowupAction("verification_form"),
    ]
    assert [m["response"] for m in dispatcher.messages] == ["utter_verification_intro"]


async def test_locked_conversation_is_told_so_and_gets_no_form(seeded_database: str) -> None:
    wrong = {"debtor_name": "张伟", "id_last4": "0000", "phone": "13800138000"}
    for _ in range(3):
        await ActionVerifyIdentity().run(CollectingDispatcher(), tracker(slots=wrong), {})
    dispatcher = CollectingDispatcher()
    events = await ActionStartVerification().run(
        dispatcher, tracker("我想协商", intent="request_negotiation"), {}
    )
    assert events[:4] == [
        SlotSet("pending_request", "request_negotiation"),
        SlotSet("debtor_name", None),
        SlotSet("id_last4", None),
        SlotSet("phone", None),
    ]
    # A person can verify the debtor another way: the conversation is handed over.
    reference = events[-3]["value"]
    assert events[-3:] == [
        SlotSet("handoff_reference", reference),
        SlotSet("requested_slot", None),
        ConversationPaused(),
    ]
    assert reference.startswith("RG")
    assert dispatcher.messages[0]["response"] == "utter_verification_locked"
    assert dispatcher.messages[1]["response"] in {
        "utter_handoff_waiting",
        "utter_handoff_after_hours",
    }
    assert dispatcher.messages[1]["reference"] == reference


async def test_forged_verified_slots_disclose_nothing(seeded_database: str) -> None:
    """The action server checks the verification in the database, not the slots."""
    dispatcher = CollectingDispatcher()
    forged = {"verified": True, "debtor_id": 3}
    events = await ActionAccountStatus().run(
        dispatcher, tracker("我欠多少钱", slots=forged, sender="forger"), {}
    )
    assert events == [
        SlotSet("pending_request", "ask_account_status"),
        FollowupAction("verification_form"),
    ]
    assert [m["response"] for m in dispatcher.messages] == ["utter_verification_intro"]


async def test_verified_conversation_hears_its_status_again(seeded_database: str) -> None:
    details = {"debtor_name": "刘洋", "id_last4": "8765", "phone": "13600136003"}
    first = await ActionVerifyIdentity().run(
        CollectingDispatcher(), tracker(slots=details, sender="liu"), {}
    )
    debtor = next(e["value"] for e in first if e.get("name") == "debtor_id")
    dispatcher = CollectingDispatcher()
    events = await ActionAccountStatus().run(
        dispatcher,
        tracker("还欠多少", slots={"verified": True, "debtor_id": debtor}, sender="liu"),
        {},
    )
    assert events == []
    assert [m["response"] for m in dispatcher.messages] == [
        "utter_account_status_credit_card",
        "utter_account_next_steps",
    ]
    assert dispatcher.messages[0]["overdue_total"] == "3,045.00"


# --- someone acting for the debtor ---------------------------------------------------------

FOR_ANOTHER = [
    SlotSet("acting_for_another", True),
    SlotSet("debtor_name", None),
    SlotSet("id_last4", None),
    SlotSet("phone", None),
    SlotSet("pending_request", None),
]


async def test_a_relative_who_gives_the_debtors_name_is_not_verified(seeded_database: str) -> None:
    text = "我是王芳的老公，她住院了，身份证尾号4321 手机13700137002"
    entities = [{"entity": "person_name", "value": "王芳", "start": 2, "end": 4}]
    slots = {"debtor_name": "王芳", "id_last4": "4321", "phone": "13700137002"}
    dispatcher = CollectingDispatcher()

    events = await ValidateVerificationForm().run(
        dispatcher, tracker(text, entities, set_now=slots), DOMAIN
    )

    assert events == [*FOR_ANOTHER, SlotSet("requested_slot", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_third_party"]
    # The form's end runs the check, which verifies nobody in this conversation.
    after = tracker(slots={**slots, "acting_for_another": True})
    verify = CollectingDispatcher()
    assert await ActionVerifyIdentity().run(verify, after, {}) == FOR_ANOTHER[1:4]
    assert verify.messages == []


async def test_a_request_made_for_another_opens_no_verification(seeded_database: str) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionStartVerification().run(
        dispatcher, tracker("帮我老公问一下 他的信用卡能协商吗", intent="request_negotiation"), {}
    )
    assert events == FOR_ANOTHER
    assert [m["response"] for m in dispatcher.messages] == ["utter_third_party"]
    # Later in the same conversation, the debtor's own wording changes nothing.
    later = tracker("我要查欠款", intent="ask_account_status", slots={"acting_for_another": True})
    again = CollectingDispatcher()
    assert await ActionStartVerification().run(again, later, {}) == FOR_ANOTHER


async def test_bare_id_digits_given_with_a_name_and_a_mobile(seeded_database: str) -> None:
    """ "张伟 1234 13800138000": the four digits are the ID suffix, though no word says so."""
    text = "张伟 1234 13800138000"
    entities = [
        {"entity": "person_name", "value": "张伟", "start": 0, "end": 2},
        {"entity": "phone", "value": "13800138000", "start": 8, "end": 19},
    ]
    slots = {"debtor_name": "张伟", "phone": "13800138000"}
    dispatcher = CollectingDispatcher()
    events = await ValidateVerificationForm().run(
        dispatcher, tracker(text, entities, set_now=slots), DOMAIN
    )
    assert events == [
        SlotSet("debtor_name", "张伟"),
        SlotSet("phone", "13800138000"),
        SlotSet("id_last4", "1234"),
    ]
    assert dispatcher.messages == []


async def test_a_lone_number_is_not_taken_for_the_id_suffix() -> None:
    dispatcher = CollectingDispatcher()
    events = await ValidateVerificationForm().run(
        dispatcher, tracker("一个月4000", [], slots={"requested_slot": "phone"}), DOMAIN
    )
    assert events == []
