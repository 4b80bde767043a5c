"""A verified debtor with an agreement or promise: its state, no second plan, a negotiator
to change it, the notice of a broken plan, and reminders shown at the next visit.

Literal trackers against a seeded SQLite database, with the clock stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.account import ActionAccountStatus
from actions.agreement import ActionConfirmAgreement
from actions.context import context
from actions.escalation import ActionHandOffOnRequest, ActionSessionStart
from actions.offers import ActionChoosePlan, ActionOfferPlans
from actions.routing import ActionStartVerification, ActionVerifyIdentity
from actions.schedule import ActionShowSchedule
from bot.domain.clock import BEIJING
from bot.store.cases import open_case_of
from bot.store.identity import verify_identity
from bot.store.models import Agreement
from bot.store.reminder_models import Reminder
from bot.store.reminders import queue_reminders
from tests.support.actions import action_context
from tests.support.agreements import add_agreement, add_verification, demo_account

SENDER = "conversation-plan-state"
NOW = datetime(2026, 12, 10, 10, 0, tzinfo=BEIJING)
ZHANG = "13800138000"
ZHANG_DETAILS = {"debtor_name": "张伟", "id_last4": "1234", "phone": ZHANG}
CIRCUMSTANCES = {
    "monthly_income": "4000.00",
    "monthly_expenses": "2500.00",
    "other_repayments": "0.00",
    "hardship_reason": "unemployment",
    "hardship_months": "6",
    "proposed_monthly": "unknown",
    "available_funds": "0.00",
}
#: What every message of `CollectingDispatcher` carries besides the response's values.
STANDARD = {"text", "buttons", "elements", "custom", "template", "response", "image", "attachment"}
STATE = (
    "utter_agreement_state",
    {
        "reference": "XS-PLAN",
        "total": "1,500.00",
        "currency": "CNY",
        "paid": "100.00",
        "remaining": "1,400.00",
    },
)
NEXT_DUE = ("utter_agreement_next_due", {"due_date": "2026-12-20（星期日）", "amount": "500.00"})
PICK_FIRST = {"entity": "plan_index", "value": 1, "start": 1, "end": 2}
LATE = ("utter_agreement_late", {"count": 1, "late": "1. 2026-11-20（星期五）  400.00"})


@pytest.fixture
def zhang(seeded_url: str) -> Iterator[int]:
    """This conversation verified as 张伟, the clock stopped at `NOW`; his debtor id."""
    with action_context(seeded_url, now=lambda: NOW) as ctx:
        result = asyncio.run(verify_identity(ctx.database, SENDER, "张伟", "1234", ZHANG))
        assert result.debtor_id is not None
        yield result.debtor_id


async def plan(debtor: int, **values: Any) -> int:
    """张伟's plan: one installment late (100 of 500 paid), two to come."""
    db = context().database
    _, account = await demo_account(db, ZHANG)
    agreement_id = await add_agreement(
        db,
        debtor,
        account,
        [
            (date(2026, 11, 20), "500.00"),
            (date(2026, 12, 20), "500.00"),
            (date(2027, 1, 20), "500.00"),
        ],
        conversation_id=SENDER,
        **values,
    )
    async with db.session() as session:
        row = await session.get(Agreement, agreement_id)
        assert row is not None
        row.reference = "XS-PLAN"
        await session.execute(
            sa.text(
                "UPDATE agreement_installments SET paid_amount = 100, status = 'late'"
                " WHERE agreement_id = :id AND number = 1"
            ),
            {"id": agreement_id},
        )
        await session.commit()
    return agreement_id


def tracker(
    intent: str,
    slots: dict[str, Any],
    text: str = "",
    sender: str = SENDER,
    entities: list[dict[str, Any]] | None = None,
) -> Tracker:
    found = entities or []
    return Tracker(
        sender_id=sender,
        slots=slots,
        latest_message={"text": text, "intent": {"name": intent}, "entities": found},
        events=[ActionExecuted("action_listen"), UserUttered(text, {"name": intent}, found)],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def said(dispatcher: CollectingDispatcher) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m["response"], {k: v for k, v in m.items() if k not in STANDARD})
        for m in dispatcher.messages
    ]


def verified(debtor: int, **slots: Any) -> dict[str, Any]:
    return {"verified": True, "debtor_id": debtor, **slots}


async def test_asking_about_the_account_tells_the_plan_instead_of_the_next_steps(
    zhang: int,
) -> None:
    await plan(zhang)
    dispatcher = CollectingDispatcher()
    events = await ActionAccountStatus().run(
        dispatcher, tracker("ask_account_status", verified(zhang)), {}
    )
    assert events == []
    assert [r for r, _ in said(dispatcher)] == ["utter_account_status_credit_card"] + [
        STATE[0],
        NEXT_DUE[0],
        LATE[0],
    ]
    assert said(dispatcher)[1:] == [STATE, NEXT_DUE, LATE]


async def test_asking_for_the_plan_shows_the_schedule_and_where_it_stands(zhang: int) -> None:
    await plan(zhang)
    dispatcher = CollectingDispatcher()
    assert (
        await ActionShowSchedule().run(
            dispatcher, tracker("ask_repayment_plan", verified(zhang)), {}
        )
        == []
    )
    assert [r for r, _ in said(dispatcher)] == ["utter_schedule", STATE[0], NEXT_DUE[0], LATE[0]]


async def test_a_second_plan_for_the_same_account_is_not_offered(zhang: int) -> None:
    await plan(zhang)
    dispatcher = CollectingDispatcher()
    events = await ActionStartVerification().run(
        dispatcher, tracker("request_negotiation", verified(zhang), "我想协商还款"), {}
    )
    assert events == [SlotSet("pending_request", None)]
    assert said(dispatcher) == [STATE, NEXT_DUE, LATE, ("utter_agreement_no_second_plan", {})]
    # Nor with the circumstances already known, nor as a promise to pay.
    dispatcher = CollectingDispatcher()
    events = await ActionOfferPlans().run(
        dispatcher, tracker("inform", verified(zhang, **CIRCUMSTANCES)), {}
    )
    assert events == [
        SlotSet("offers", None),
        SlotSet("selected_offer", None),
        SlotSet("negotiation_stage", None),
    ]
    assert said(dispatcher)[-1] == ("utter_agreement_no_second_plan", {})
    dispatcher = CollectingDispatcher()
    events = await ActionStartVerification().run(
        dispatcher,
        tracker("promise_to_pay", verified(zhang, promise_date="2026-12-31"), "我月底还清"),
        {},
    )
    assert events == [
        SlotSet("pending_request", None),
        SlotSet("promise_date", None),
        SlotSet("promise_amount", None),
    ]
    assert said(dispatcher)[-1] == ("utter_agreement_no_second_plan", {})


async def test_a_completed_or_broken_plan_does_not_stop_a_new_one(zhang: int) -> None:
    await plan(zhang, status="completed", ended_on=date(2026, 12, 1))
    dispatcher = CollectingDispatcher()
    events = await ActionOfferPlans().run(
        dispatcher, tracker("inform", verified(zhang, **CIRCUMSTANCES)), {}
    )
    assert events[0].get("name") == "offers" and events[0]["value"]


async def test_asking_to_change_it_gives_the_negotiator_the_agreement(zhang: int) -> None:
    agreement_id = await plan(zhang)
    dispatcher = CollectingDispatcher()
    await ActionHandOffOnRequest().run(
        dispatcher, tracker("request_human", verified(zhang), "/request_human"), {}
    )
    case = await open_case_of(context().database, SENDER)
    assert case is not None
    (record,) = case.summary["active_agreements"]
    assert (record["id"], record["reference"], record["status"], record["paid"]) == (
        agreement_id,
        "XS-PLAN",
        "active",
        "100.00",
    )
    assert record["next_due"] == {"due_date": "2026-12-20", "amount": "500.00"}
    assert record["late_installments"] == [1]
    assert [i["status"] for i in record["installments"]] == ["late", "due", "due"]


async def test_two_conversations_agreeing_at_once_record_one_plan(zhang: int) -> None:
    offers = await ActionOfferPlans().run(
        CollectingDispatcher(), tracker("inform", verified(zhang, **CIRCUMSTANCES)), {}
    )
    slots = verified(zhang, **CIRCUMSTANCES, offers=offers[0]["value"])
    chosen = []
    for _ in range(2):
        events = await ActionChoosePlan().run(
            CollectingDispatcher(), tracker("choose_plan", slots, "选1", entities=[PICK_FIRST]), {}
        )
        chosen.append(events[0]["value"])
    results = []
    for selected in chosen:
        dispatcher = CollectingDispatcher()
        confirming = {**slots, "selected_offer": selected, "negotiation_stage": "confirming"}
        confirm = tracker("affirm", confirming, "确认")
        confirm.events.insert(0, ActionExecuted("action_choose_plan"))
        events = await ActionConfirmAgreement().run(dispatcher, confirm, {})
        results.append((events, [r for r, _ in said(dispatcher)]))
    assert results[0][1] == ["utter_agreement_recorded", "utter_collections_paused"]
    assert results[1] == (
        [
            SlotSet("selected_offer", None),
            SlotSet("negotiation_stage", None),
            SlotSet("offers", None),
        ],
        ["utter_agreement_state", "utter_agreement_next_due", "utter_agreement_no_second_plan"],
    )


async def test_the_next_conversation_after_a_broken_plan_is_told_once(zhang: int) -> None:
    await plan(zhang, status="broken", ended_on=date(2026, 12, 8))
    told = (
        "utter_plan_ended_told",
        {"reference": "XS-PLAN", "ended_on": "2026-12-08（星期二）", "paid": "100.00"},
    )
    for sender, expected in (("after-the-break", [told]), ("later-again", [])):
        dispatcher = CollectingDispatcher()
        await ActionVerifyIdentity().run(
            dispatcher, tracker("inform", dict(ZHANG_DETAILS), sender=sender), {}
        )
        assert said(dispatcher)[0][0] == "utter_verified"
        assert [m for m in said(dispatcher) if m[0] == "utter_plan_ended_told"] == expected
        assert said(dispatcher)[1:2] == expected or not expected


async def test_a_web_chat_reminder_is_shown_at_the_next_visit_once(zhang: int) -> None:
    db = context().database
    _, account = await demo_account(db, ZHANG)
    await add_agreement(
        db, zhang, account, [(date(2026, 12, 12), "800.00")], conversation_id="webchat:abc"
    )
    await add_verification(db, zhang, "webchat:abc", NOW)
    assert (await queue_reminders(db, NOW.date(), NOW)).queued == 1
    reference = await _reminder_reference(zhang)
    for visit in range(2):
        dispatcher = CollectingDispatcher()
        events = await ActionSessionStart().run(
            dispatcher, tracker("session_start", {}, sender="webchat:abc"), {}
        )
        assert events == [SessionStarted(), ActionExecuted("action_listen")]
        expected = [
            (
                "utter_reminder_installment_due",
                {
                    "reference": reference,
                    "currency": "CNY",
                    "due_date": "2026-12-12（星期六）",
                    "amount": "800.00",
                },
            )
        ]
        assert said(dispatcher) == (expected if visit == 0 else [])
    async with db.session() as session:
        reminder = (await session.execute(sa.select(Reminder))).scalar_one()
    assert (reminder.status, reminder.via) == ("sent", "visit")
    assert reminder.sent_at == NOW.astimezone(timezone.utc)


async def _reminder_reference(debtor: int) -> str:
    async with context().database.session() as session:
        return str(
            await session.scalar(
                sa.select(Agreement.reference).where(Agreement.debtor_id == debtor)
            )
        )
