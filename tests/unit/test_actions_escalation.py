"""Handoff, complaint, dispute and referral actions on literal trackers, against SQLite.

The clock of `actions.escalation` is fixed by the `clock` fixture (its `datetime` is
replaced by a subclass whose `now` returns a chosen instant), so that whether staff
are at work is deterministic; `bot.domain.staff_hours.next_staff_opening` itself runs for real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    ConversationResumed,
    EventType,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.context import context
from actions.escalation import (
    ActionHandleFallback,
    ActionHandOffOnRequest,
    ActionHandoffResume,
    ActionLogComplaint,
    ActionLogDispute,
    ActionSessionStart,
    ActionSupportDistress,
    ActionWatchHeldConversation,
)
from actions.referral import (
    ActionDeclineNegotiator,
    ActionHandleRefusal,
    ActionHandOffAfterDecline,
    ActionOffersDeclined,
)
from bot.store.cases import close_case
from bot.store.identity import verify_identity
from bot.store.models import StaffMember
from tests.support.actions import SettableClock, action_context

SENDER = "conversation-escalation"
BEIJING = ZoneInfo("Asia/Shanghai")
#: Monday 2 March 2026, 14:00 in Beijing: negotiators are at work.
WORKING_HOURS = datetime(2026, 3, 2, 14, 0, tzinfo=BEIJING)
CIRCUMSTANCES = {
    "monthly_income": "4000.00",
    "monthly_expenses": "2500.00",
    "hardship_reason": "unemployment",
    "hardship_months": "6",
}
OFFERS = [
    {
        "plan": "personalized_installment",
        "one_off": False,
        "monthly_amount": "1024.35",
        "months": 23,
    }
]
ZHANG_WEI_ACCOUNT = {
    "product": "credit_card",
    "currency": "CNY",
    "outstanding_principal": "20000.00",
    "overdue_principal": "20000.00",
    "interest": "2860.00",
    "penalty_fees": "700.00",
    "overdue_total": "23560.00",
    "days_past_due": 45,
    "missed_installments": 0,
    "installment_amount": None,
    "status": "overdue",
    "collections_hold": False,
    "broken_plans": 0,
}


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def bank(seeded_url: str, settable_clock: SettableClock) -> Iterator[dict[str, int]]:
    """A seeded database in which this conversation has verified as 张伟.

    Returns the debtor ids by name.
    """
    with action_context(seeded_url, now=settable_clock) as ctx:
        result = asyncio.run(verify_identity(ctx.database, SENDER, "张伟", "1234", "13800138000"))
        assert result.status == "verified"
        ids = {row["full_name"]: row["id"] for row in _rows("debtors")}
        assert ids["张伟"] == result.debtor_id
        yield ids


@pytest.fixture
def settable_clock() -> SettableClock:
    """The clock the actions see: the real time until a test stops it."""
    return SettableClock()


@pytest.fixture
def clock(settable_clock: SettableClock) -> Callable[[datetime], None]:
    """Sets the time the actions see; working hours unless told otherwise."""

    def set_now(instant: datetime) -> None:
        settable_clock.instant = instant

    set_now(WORKING_HOURS)
    return set_now


def said(text: str, intent: str, channel: str = "rest") -> list[EventType]:
    """What a debtor's message adds to the tracker: listening, then the message."""
    return [
        ActionExecuted("action_listen"),
        UserUttered(text, {"intent": {"name": intent}, "entities": []}, input_channel=channel),
    ]


def tracker(
    text: str = "",
    slots: dict[str, Any] | None = None,
    intent: str = "inform",
    *,
    before: list[EventType] | None = None,
    active_loop: str | None = None,
    channel: str = "rest",
    sender: str = SENDER,
    paused: bool = False,
) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots=slots or {},
        latest_message={"text": text, "intent": {"name": intent}, "entities": []},
        events=[*(before or []), *said(text, intent, channel)],
        paused=paused,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def message(response: str, **kwargs: Any) -> dict[str, Any]:
    """A message exactly as `CollectingDispatcher` records `utter_message(response=...)`."""
    return {
        "text": None,
        "buttons": [],
        "elements": [],
        "custom": {},
        "template": response,
        "response": response,
        "image": None,
        "attachment": None,
        **kwargs,
    }


def _engine() -> sa.engine.Engine:
    url = context().database.engine.url.set(drivername="sqlite")
    return sa.create_engine(url, future=True)


def _rows(table: str) -> list[dict[str, Any]]:
    engine = _engine()
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.text(f"SELECT * FROM {table}"))]  # noqa: S608
    finally:
        engine.dispose()


def _execute(statement: str, **params: Any) -> None:
    engine = _engine()
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def cases() -> list[dict[str, Any]]:
    return [{**row, "summary": json.loads(row["summary"])} for row in _rows("handoff_cases")]


def account_of(debtor_id: int) -> dict[str, Any]:
    [account] = [a for a in _rows("accounts") if a["debtor_id"] == debtor_id]
    return account


def verified(debtor_id: int, **slots: Any) -> dict[str, Any]:
    return {"verified": True, "debtor_id": debtor_id, **slots}


def handoff_events(reference: str) -> list[EventType]:
    return [
        SlotSet("handoff_reference", reference),
        SlotSet("requested_slot", None),
        ConversationPaused(),
    ]


async def add_supervisor() -> StaffMember:
    staff = StaffMember(username="boss", display_name="主管", password_hash="x", role="supervisor")
    async with context().database.session() as session:
        session.add(staff)
        await session.commit()
    return staff


# --- a person on request ---------------------------------------------------------------------


async def test_hand_off_on_request_with_everything_learned(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    zhang_wei = bank["张伟"]
    selected = {"offer": OFFERS[0], "index": 1}
    slots = verified(
        zhang_wei,
        **CIRCUMSTANCES,
        offers=OFFERS,
        negotiation_stage="confirming",
        selected_offer=selected,
    )
    history = said("我想分期", "negotiate", "socketio")
    dispatcher = CollectingDispatcher()
    events = await ActionHandOffOnRequest().run(
        dispatcher,
        tracker("转人工", slots, "request_human", before=history, channel="socketio"),
        {},
    )
    [case] = cases()
    reference = case["reference"]
    assert events == handoff_events(reference)
    assert dispatcher.messages == [message("utter_handoff_waiting", reference=reference)]
    account = account_of(zhang_wei)
    assert {
        key: case[key] for key in ("conversation_id", "channel", "debtor_id", "account_id")
    } == {
        "conversation_id": SENDER,
        "channel": "socketio",
        "debtor_id": zhang_wei,
        "account_id": account["id"],
    }
    assert (case["reason"], case["priority"], case["status"], case["category"]) == (
        "request_human",
        4,
        "waiting",
        None,
    )
    assert case["summary"] == {
        "verified": True,
        "accounts": [{"account_id": account["id"], **ZHANG_WEI_ACCOUNT}],
        "circumstances": CIRCUMSTANCES,
        "offers_shown": OFFERS,
        "negotiation_stage": "confirming",
        "offer_chosen": OFFERS[0],
        "recent_messages": [
            {"text": "我想分期", "intent": "negotiate"},
            {"text": "转人工", "intent": "request_human"},
        ],
    }
    # No hold for a request for a person.
    assert account["collections_hold"] == 0
    assert [e["action"] for e in _rows("audit_log")].count("handoff_opened") == 1


async def test_a_handoff_ends_an_active_form(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandOffOnRequest().run(
        dispatcher,
        tracker(
            "转人工", verified(bank["张伟"]), "request_human", active_loop="circumstances_form"
        ),
        {},
    )
    [case] = cases()
    assert events == [ActiveLoop(None), *handoff_events(case["reference"])]
    assert case["channel"] == "rest"


async def test_an_unverified_conversation_hands_off_without_a_debtor(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    """Slots claiming a verification the database does not know name nobody."""
    dispatcher = CollectingDispatcher()
    events = await ActionHandOffOnRequest().run(
        dispatcher,
        tracker("找人工", verified(bank["张伟"]), "request_human", sender="someone-else"),
        {},
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert (case["conversation_id"], case["debtor_id"], case["account_id"]) == (
        "someone-else",
        None,
        None,
    )
    assert case["summary"] == {
        "verified": False,
        "recent_messages": [{"text": "找人工", "intent": "request_human"}],
    }


async def test_an_unknown_channel_is_recorded_as_unknown(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    no_channel = Tracker(
        sender_id=SENDER,
        slots={},
        latest_message={"text": "人工", "intent": {"name": "request_human"}, "entities": []},
        events=[UserUttered("人工", {"intent": {"name": "request_human"}})],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )
    await ActionHandOffOnRequest().run(CollectingDispatcher(), no_channel, {})
    [case] = cases()
    assert case["channel"] == "unknown"


async def test_only_the_latest_twelve_messages_are_quoted(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    history = [event for n in range(14) for event in said(f"第{n}条", "inform")]
    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("人工", {}, "request_human", before=history), {}
    )
    [case] = cases()
    quoted = [m["text"] for m in case["summary"]["recent_messages"]]
    assert quoted == [f"第{n}条" for n in range(3, 14)] + ["人工"]


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        (datetime(2026, 3, 8, 10, 0, tzinfo=BEIJING), "03月09日（周一）09:00"),  # Sunday
        (datetime(2026, 3, 7, 21, 0, tzinfo=BEIJING), "03月09日（周一）09:00"),  # Saturday night
        (datetime(2026, 3, 2, 23, 0, tzinfo=ZoneInfo("UTC")), "03月03日（周二）09:00"),
        (datetime(2026, 3, 4, 8, 59, tzinfo=BEIJING), "03月04日（周三）09:00"),
    ],
)
async def test_after_hours_the_debtor_is_told_when_a_person_answers(
    bank: dict[str, int], clock: Callable[[datetime], None], now: datetime, opening: str
) -> None:
    clock(now)
    dispatcher = CollectingDispatcher()
    events = await ActionHandOffOnRequest().run(
        dispatcher, tracker("转人工", {}, "request_human"), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_handoff_after_hours", reference=case["reference"], opening=opening)
    ]


async def test_asking_twice_keeps_one_case(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    first = CollectingDispatcher()
    await ActionHandOffOnRequest().run(first, tracker("转人工", {}, "request_human"), {})
    second = CollectingDispatcher()
    events = await ActionHandOffOnRequest().run(second, tracker("人呢", {}, "request_human"), {})
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert first.messages == second.messages


# --- distress, disputes, complaints ----------------------------------------------------------


async def test_distress_gets_the_hotline_first_then_the_most_urgent_case(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    text = "我真的撑不下去了"
    dispatcher = CollectingDispatcher()
    events = await ActionSupportDistress().run(
        dispatcher, tracker(text, verified(bank["张伟"]), "express_distress"), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_express_distress", crisis_hotline="12356"),
        message("utter_handoff_waiting", reference=case["reference"]),
    ]
    assert (case["reason"], case["priority"], case["debtor_id"]) == ("distress", 1, bank["张伟"])
    assert case["summary"]["debtor_words"] == text


async def test_distress_raises_an_open_case_to_the_top(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("转人工", {}, "request_human"), {}
    )
    await ActionSupportDistress().run(
        CollectingDispatcher(), tracker("不想活了", {}, "express_distress"), {}
    )
    [case] = cases()
    assert (case["reason"], case["priority"]) == ("distress", 1)


async def test_distress_while_a_person_holds_the_conversation_is_answered_at_once(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("转人工", {}, "request_human"), {}
    )
    [case] = cases()
    watch = ActionWatchHeldConversation()
    # Not paused, or not distress: nothing (it runs on every message).
    dispatcher = CollectingDispatcher()
    assert await watch.run(dispatcher, tracker("不想活了", {}, "express_distress"), {}) == []
    assert await watch.run(dispatcher, tracker("在吗", {}, "greet", paused=True), {}) == []
    assert dispatcher.messages == []

    events = await watch.run(
        dispatcher, tracker("我真的不想活了", {}, "express_distress", paused=True), {}
    )
    assert events == [SlotSet("handoff_reference", case["reference"])]
    assert dispatcher.messages == [
        message("utter_express_distress", crisis_hotline="12356"),
        message("utter_distress_while_held"),
    ]
    [case] = cases()
    assert (case["reason"], case["priority"], case["status"]) == ("distress", 1, "waiting")


@pytest.mark.parametrize("text", ["我现在就在楼顶", "安眠药我都准备好了", "我而家喺天台"])
async def test_imminent_danger_gets_police_and_ambulance_first(
    bank: dict[str, int], clock: Callable[[datetime], None], text: str
) -> None:
    dispatcher = CollectingDispatcher()
    await ActionSupportDistress().run(dispatcher, tracker(text, {}, "express_distress"), {})
    [case] = cases()
    assert dispatcher.messages[0] == message(
        "utter_imminent_danger",
        police_hotline="110",
        ambulance_hotline="120",
        crisis_hotline="12356",
    )
    assert (case["reason"], case["priority"]) == ("distress", 1)


async def test_imminent_danger_while_held_out_of_hours_is_answered_in_the_same_turn(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    clock(datetime(2026, 12, 6, 23, 30, tzinfo=BEIJING))  # a Sunday night: no staff
    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("转人工", {}, "request_human"), {}
    )
    dispatcher = CollectingDispatcher()
    await ActionWatchHeldConversation().run(
        dispatcher, tracker("我现在就在楼顶", {}, "express_distress", paused=True), {}
    )
    assert [m["response"] for m in dispatcher.messages] == [
        "utter_imminent_danger",
        "utter_distress_while_held",
    ]
    [case] = cases()
    assert (case["reason"], case["priority"]) == ("distress", 1)


async def test_a_verified_dispute_puts_the_account_on_hold(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    text = "这笔钱不是我欠的，金额也不对"
    dispatcher = CollectingDispatcher()
    events = await ActionLogDispute().run(
        dispatcher, tracker(text, verified(bank["张伟"]), "dispute_debt"), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_dispute_recorded"),
        message("utter_handoff_waiting", reference=case["reference"]),
    ]
    account = account_of(bank["张伟"])
    assert (case["reason"], case["priority"], case["debtor_id"], case["account_id"]) == (
        "dispute",
        2,
        bank["张伟"],
        account["id"],
    )
    assert case["summary"]["debtor_words"] == text
    assert account["collections_hold"] == 1
    assert [a["collections_hold"] for a in _rows("accounts")].count(1) == 1


async def test_an_unverified_dispute_holds_nothing(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionLogDispute().run(
        dispatcher, tracker("我没欠过钱", {}, "dispute_debt", sender="stranger"), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_dispute_recorded_unverified"),
        message("utter_handoff_waiting", reference=case["reference"]),
    ]
    assert (case["reason"], case["debtor_id"], case["account_id"]) == ("dispute", None, None)
    assert [a["collections_hold"] for a in _rows("accounts")] == [0] * 5


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("催收员天天打电话骚扰我家人，我要投诉", "collection_conduct"),
        ("你们乱收费，我要投诉", "fees"),
        ("我要投诉", "other"),
    ],
)
async def test_a_complaint_is_recorded_with_its_category(
    bank: dict[str, int], clock: Callable[[datetime], None], text: str, category: str
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionLogComplaint().run(
        dispatcher, tracker(text, verified(bank["张伟"]), "complain"), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_complaint_recorded", regulator_hotline="12378"),
        message("utter_handoff_waiting", reference=case["reference"]),
    ]
    assert (case["reason"], case["category"], case["priority"]) == ("complaint", category, 2)
    assert case["summary"]["debtor_words"] == text
    [opened] = [e for e in _rows("audit_log") if e["action"] == "handoff_opened"]
    assert json.loads(opened["details"])["category"] == category


# --- not understood --------------------------------------------------------------------------


async def test_one_misunderstanding_asks_to_rephrase(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandleFallback().run(
        dispatcher, tracker("阿巴阿巴", {}, "nlu_fallback", before=said("你好", "greet")), {}
    )
    assert events == []
    assert dispatcher.messages == [message("utter_default")]
    assert cases() == []


async def test_two_misunderstandings_in_a_row_hand_off(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    before = [*said("阿巴", "nlu_fallback"), ActionExecuted("action_handle_fallback")]
    dispatcher = CollectingDispatcher()
    events = await ActionHandleFallback().run(
        dispatcher, tracker("阿巴阿巴", {}, "nlu_fallback", before=before), {}
    )
    [case] = cases()
    assert events == handoff_events(case["reference"])
    assert dispatcher.messages == [
        message("utter_fallback_handoff"),
        message("utter_handoff_waiting", reference=case["reference"]),
    ]
    assert (case["reason"], case["priority"]) == ("repeated_fallback", 4)


@pytest.mark.parametrize(
    "between",
    [
        [*said("我想协商还款", "negotiate"), ActionExecuted("utter_ask_monthly_income")],
        [SessionStarted()],
    ],
    ids=["understood", "new-session"],
)
async def test_a_fallback_after_an_understood_message_counts_one_again(
    bank: dict[str, int], clock: Callable[[datetime], None], between: list[EventType]
) -> None:
    before = [*said("阿巴", "nlu_fallback"), ActionExecuted("action_handle_fallback"), *between]
    dispatcher = CollectingDispatcher()
    events = await ActionHandleFallback().run(
        dispatcher, tracker("阿巴阿巴", {}, "nlu_fallback", before=before), {}
    )
    assert events == []
    assert dispatcher.messages == [message("utter_default")]
    assert cases() == []


# --- refusals and collections ----------------------------------------------------------------


async def test_a_first_refusal_is_answered_with_the_options(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRefusal().run(
        dispatcher, tracker("我不还", verified(bank["张伟"]), "refuse_payment"), {}
    )
    assert events == []
    assert dispatcher.messages == [message("utter_refuse_payment")]
    assert _rows("collections_referrals") == []


def _refused_once() -> list[EventType]:
    return [*said("我不还", "refuse_payment"), ActionExecuted("action_handle_refusal")]


async def test_a_repeated_refusal_of_a_verified_debtor_is_referred(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    zhang_wei = bank["张伟"]
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRefusal().run(
        dispatcher,
        tracker("说了不还就不还", verified(zhang_wei), "refuse_payment", before=_refused_once()),
        {},
    )
    [referral] = _rows("collections_referrals")
    assert referral["reference"].startswith("CS")
    assert events == [SlotSet("negotiation_stage", None)]
    assert dispatcher.messages == [
        message("utter_collections_referral", reference=referral["reference"])
    ]
    assert (
        referral["conversation_id"],
        referral["channel"],
        referral["debtor_id"],
        referral["account_id"],
        referral["reason"],
        referral["status"],
    ) == (SENDER, "rest", zhang_wei, account_of(zhang_wei)["id"], "refused_payment", "queued")
    summary = json.loads(referral["summary"])
    assert summary["verified"] is True
    assert [m["intent"] for m in summary["recent_messages"]] == ["refuse_payment"] * 2
    assert cases() == []  # a referral is not a handoff
    [entry] = [e for e in _rows("audit_log") if e["action"] == "collections_referral"]
    assert entry["debtor_id"] == zhang_wei
    # Asked again: the same referral, no second row.
    again = CollectingDispatcher()
    await ActionHandleRefusal().run(
        again,
        tracker("不还", verified(zhang_wei), "refuse_payment", before=_refused_once() * 2),
        {},
    )
    assert again.messages == dispatcher.messages
    assert len(_rows("collections_referrals")) == 1


async def test_a_repeated_refusal_of_an_unverified_debtor_refers_nobody(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRefusal().run(
        dispatcher,
        tracker(
            "不还",
            verified(bank["张伟"]),
            "refuse_payment",
            before=_refused_once(),
            sender="stranger",
        ),
        {},
    )
    assert events == []
    assert dispatcher.messages == [message("utter_refuse_payment_unverified")]
    assert _rows("collections_referrals") == []


async def test_a_refusal_in_an_earlier_session_does_not_count(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRefusal().run(
        dispatcher,
        tracker(
            "我不还",
            verified(bank["张伟"]),
            "refuse_payment",
            before=[*_refused_once(), SessionStarted()],
        ),
        {},
    )
    assert events == []
    assert dispatcher.messages == [message("utter_refuse_payment")]


async def test_all_offers_declined(bank: dict[str, int], clock: Callable[[datetime], None]) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionOffersDeclined().run(
        dispatcher, tracker("都不行", verified(bank["张伟"]), "deny"), {}
    )
    assert events == [SlotSet("negotiation_stage", "declined")]
    assert dispatcher.messages == [message("utter_offers_declined")]
    assert cases() == [] and _rows("collections_referrals") == []


async def test_after_declining_the_offers_a_person(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandOffAfterDecline().run(
        dispatcher, tracker("我还是想谈谈", verified(bank["张伟"]), "affirm"), {}
    )
    [case] = cases()
    assert events == [SlotSet("negotiation_stage", None), *handoff_events(case["reference"])]
    assert dispatcher.messages == [message("utter_handoff_waiting", reference=case["reference"])]
    assert (case["reason"], case["priority"]) == ("offers_declined", 3)


@pytest.mark.parametrize(
    ("days_past_due", "broken_plans", "referred"),
    [(180, 1, True), (179, 1, False), (180, 0, False)],
)
async def test_declining_a_negotiator(
    bank: dict[str, int],
    clock: Callable[[datetime], None],
    days_past_due: int,
    broken_plans: int,
    referred: bool,
) -> None:
    zhang_wei = bank["张伟"]
    _execute(
        "UPDATE accounts SET days_past_due = :days, broken_plans = :broken WHERE debtor_id = :id",
        days=days_past_due,
        broken=broken_plans,
        id=zhang_wei,
    )
    dispatcher = CollectingDispatcher()
    events = await ActionDeclineNegotiator().run(
        dispatcher, tracker("不用了", verified(zhang_wei), "deny"), {}
    )
    assert events == [SlotSet("negotiation_stage", None)]
    referrals = _rows("collections_referrals")
    if referred:
        [referral] = referrals
        assert (referral["reason"], referral["debtor_id"], referral["account_id"]) == (
            "declined_negotiator",
            zhang_wei,
            account_of(zhang_wei)["id"],
        )
        assert dispatcher.messages == [
            message("utter_collections_referral", reference=referral["reference"])
        ]
    else:
        assert referrals == []
        assert dispatcher.messages == [message("utter_no_handoff")]
    assert cases() == []


async def test_an_unverified_debtor_declining_a_negotiator_is_not_referred(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    # 王芳 is 210 days overdue with two broken plans, but this conversation is not hers.
    dispatcher = CollectingDispatcher()
    events = await ActionDeclineNegotiator().run(
        dispatcher, tracker("不用了", verified(bank["王芳"]), "deny"), {}
    )
    assert events == [SlotSet("negotiation_stage", None)]
    assert dispatcher.messages == [message("utter_no_handoff")]
    assert _rows("collections_referrals") == []


async def test_wang_fang_declining_a_negotiator_is_referred(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    result = await verify_identity(context().database, "wang-fang", "王芳", "4321", "13700137002")
    assert result.status == "verified"
    dispatcher = CollectingDispatcher()
    await ActionDeclineNegotiator().run(
        dispatcher, tracker("不用了", verified(bank["王芳"]), "deny", sender="wang-fang"), {}
    )
    [referral] = _rows("collections_referrals")
    assert (referral["conversation_id"], referral["reason"]) == ("wang-fang", "declined_negotiator")
    assert dispatcher.messages == [
        message("utter_collections_referral", reference=referral["reference"])
    ]


# --- resuming and new sessions ---------------------------------------------------------------


async def test_the_bot_resumes_only_once_the_case_is_closed(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("转人工", {}, "request_human"), {}
    )
    [case] = cases()
    slots = {
        "handoff_reference": case["reference"],
        "negotiation_stage": "declined",
        "offers": OFFERS,
    }
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffResume().run(dispatcher, tracker("", slots, paused=True), {})
    assert events == []
    assert dispatcher.messages == []

    await close_case(context().database, case["id"], await add_supervisor(), "plan_agreed", "")
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffResume().run(dispatcher, tracker("", slots, paused=True), {})
    assert events == [
        ConversationResumed(),
        SlotSet("handoff_reference", None),
        SlotSet("negotiation_stage", None),
        SlotSet("offers", None),
        SlotSet("selected_offer", None),
        ActionExecuted("action_listen"),
    ]
    assert dispatcher.messages == [message("utter_handoff_resumed")]
    # Once resumed (the conversation is not paused), a repeated resume says nothing twice.
    dispatcher = CollectingDispatcher()
    assert await ActionHandoffResume().run(dispatcher, tracker("", {}), {}) == []
    assert dispatcher.messages == []


async def test_a_new_session_stays_paused_while_a_case_is_open(
    bank: dict[str, int], clock: Callable[[datetime], None]
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionSessionStart().run(dispatcher, tracker(), {})
    assert events == [SessionStarted(), ActionExecuted("action_listen")]

    await ActionHandOffOnRequest().run(
        CollectingDispatcher(), tracker("转人工", {}, "request_human"), {}
    )
    [case] = cases()
    events = await ActionSessionStart().run(dispatcher, tracker(), {})
    assert events == [
        SessionStarted(),
        SlotSet("handoff_reference", case["reference"]),
        ConversationPaused(),
        ActionExecuted("action_listen"),
    ]
    assert dispatcher.messages == []
    # Another conversation is not paused by this one's case.
    other = await ActionSessionStart().run(dispatcher, tracker(sender="someone-else"), {})
    assert other == [SessionStarted(), ActionExecuted("action_listen")]

    await close_case(context().database, case["id"], await add_supervisor(), "other", "")
    events = await ActionSessionStart().run(dispatcher, tracker(), {})
    assert events == [SessionStarted(), ActionExecuted("action_listen")]
