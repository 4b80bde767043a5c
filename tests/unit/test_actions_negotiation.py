"""Negotiation actions on literal trackers, against a real seeded SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    FollowupAction,
    SlotSet,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.agreement import ActionConfirmAgreement, ActionDeclineTerms
from actions.circumstances import ValidateCircumstancesForm, start_circumstances
from actions.context import context, use
from actions.formatting import full_date
from actions.offers import (
    ActionChoosePlan,
    ActionOfferPlans,
    ActionReviseOffers,
    choose,
    show_offers,
)
from actions.promise import ActionCheckPromise
from actions.schedule import ActionShowSchedule
from bot.domain.clock import BEIJING
from bot.domain.negotiation import assess
from bot.domain.policy import DEFAULT_POLICY_PATH, load_policy
from bot.domain.positions import AccountPosition, Circumstances
from bot.store.identity import verify_identity
from tests.support.actions import action_context

SENDER = "conversation-negotiation"
DOMAIN: dict[str, Any] = {
    "forms": {
        "circumstances_form": {
            "required_slots": [
                "monthly_income",
                "monthly_expenses",
                "other_repayments",
                "hardship_reason",
                "hardship_months",
                "proposed_monthly",
                "available_funds",
            ]
        }
    },
    "slots": {},
}
ZHANG_WEI = {
    "monthly_income": "4000.00",
    "monthly_expenses": "2500.00",
    "other_repayments": "0.00",
    "hardship_reason": "unemployment",
    "hardship_months": "6",
    "proposed_monthly": "unknown",
    "available_funds": "0.00",
}


@pytest.fixture
def zhang_wei(seeded_url: str) -> Iterator[int]:
    """A seeded database in which this conversation has verified as 张伟; his debtor id."""
    with action_context(seeded_url) as ctx:
        result = asyncio.run(verify_identity(ctx.database, SENDER, "张伟", "1234", "13800138000"))
        assert result.status == "verified"
        yield int(result.debtor_id)  # type: ignore[arg-type]


def tracker(
    text: str = "",
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    intent: str = "inform",
    active_loop: str | None = "circumstances_form",
    previous_action: str | None = None,
) -> Tracker:
    before = [ActionExecuted(previous_action)] if previous_action else []
    return Tracker(
        sender_id=SENDER,
        slots=slots or {},
        latest_message={"text": text, "intent": {"name": intent}, "entities": entities or []},
        events=[
            *before,
            ActionExecuted("action_listen"),
            UserUttered(text, {"name": intent}, entities or []),
        ],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [message["response"] for message in dispatcher.messages]


def _rows(table: str) -> list[dict[str, Any]]:
    url = context().database.engine.url.set(drivername="sqlite")
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.text(f"SELECT * FROM {table}"))]  # noqa: S608
    finally:
        engine.dispose()


def verified(debtor_id: int, **slots: Any) -> dict[str, Any]:
    return {"verified": True, "debtor_id": debtor_id, **slots}


# --- the form ---------------------------------------------------------------------------


async def test_one_message_answers_several_questions(zhang_wei: int) -> None:
    text = "打零工一个月四千左右，房租加吃饭要两千五"
    entities = [
        {"entity": "amount", "value": 4000, "start": 8, "end": 10},
        {"entity": "amount", "value": 2500, "start": 18, "end": 21},
    ]
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher,
        tracker(text, {"requested_slot": "monthly_income"}, entities),
        DOMAIN,
    )
    assert events == [
        SlotSet("monthly_income", "4000.00"),
        SlotSet("monthly_expenses", "2500.00"),
    ]
    assert dispatcher.messages == []


async def test_an_implausible_income_is_cleared_with_a_specific_prompt(zhang_wei: int) -> None:
    entities = [{"entity": "amount", "value": 20_000_000, "start": 6, "end": 9}]
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher,
        tracker("我一个月收入两千万", {"requested_slot": "monthly_income"}, entities),
        DOMAIN,
    )
    assert events == [SlotSet("monthly_income", None)]
    assert responses(dispatcher) == ["utter_implausible_income_too_large"]


async def test_an_answer_without_a_figure_is_asked_again(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher, tracker("今天天气不错", {"requested_slot": "other_repayments"}), DOMAIN
    )
    assert events == [SlotSet("other_repayments", None)]
    assert responses(dispatcher) == ["utter_invalid_other_repayments"]


async def validate(text: str, slots: dict[str, Any], **kwargs: Any) -> tuple[list, list[str]]:
    """The form's validation of one message; its events and the responses it sent."""
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher, tracker(text, slots, **kwargs), DOMAIN
    )
    return events, responses(dispatcher)


def after_a_repair(text: str, slots: dict[str, Any], repaired: str) -> Tracker:
    """A tracker in which `repaired` was already said once for the open question."""
    earlier = tracker(text, slots)
    earlier.events.insert(0, BotUttered("……", metadata={"utter_action": repaired}))
    return earlier


async def test_not_knowing_a_figure_gets_help_to_estimate_and_keeps_the_others(
    zhang_wei: int,
) -> None:
    income = {"requested_slot": "monthly_expenses", "monthly_income": "4000.00"}
    events, said = await validate("不知道 没算过", income)
    assert events == [SlotSet("monthly_expenses", None)]
    assert said == ["utter_estimate_monthly_expenses"]


async def test_a_needed_figure_is_asked_a_third_time_only_in_other_words(zhang_wei: int) -> None:
    slots = {"requested_slot": "monthly_income"}
    dispatcher = CollectingDispatcher()
    again = after_a_repair("嗯嗯", slots, "utter_invalid_monthly_income")
    events = await ValidateCircumstancesForm().run(dispatcher, again, DOMAIN)
    assert events == [SlotSet("monthly_income", None)]
    assert responses(dispatcher) == ["utter_invalid_again_monthly_income"]


async def test_an_optional_question_not_answered_twice_is_left_open(zhang_wei: int) -> None:
    slots = {"requested_slot": "hardship_reason", **{k: ZHANG_WEI[k] for k in list(ZHANG_WEI)[:3]}}
    dispatcher = CollectingDispatcher()
    again = after_a_repair("嗯", slots, "utter_invalid_hardship_reason")
    events = await ValidateCircumstancesForm().run(dispatcher, again, DOMAIN)
    assert events == [SlotSet("hardship_reason", "other")]
    assert responses(dispatcher) == ["utter_left_open"]
    events, said = await validate("不清楚", slots)
    assert (events, said) == ([SlotSet("hardship_reason", "other")], ["utter_left_open"])


async def test_an_apology_when_the_debtor_was_already_asked(zhang_wei: int) -> None:
    events, said = await validate("我刚才不是说过了吗", {"requested_slot": "monthly_expenses"})
    assert events == [SlotSet("monthly_expenses", None)]
    assert said == ["utter_sorry_asked_again"]


async def test_asking_for_the_plans_with_the_figures_known_goes_to_the_offers(
    zhang_wei: int,
) -> None:
    known = {k: ZHANG_WEI[k] for k in ("monthly_income", "monthly_expenses", "other_repayments")}
    events, said = await validate(
        "有哪些方案 直接说吧",
        {"requested_slot": "hardship_reason", **known},
        intent="request_negotiation",
    )
    assert said == ["utter_offers_with_what_is_known"]
    assert events == [
        SlotSet("hardship_reason", "other"),
        SlotSet("hardship_months", "unknown"),
        SlotSet("proposed_monthly", "unknown"),
        SlotSet("available_funds", "unknown"),
    ]


async def test_asking_for_the_plans_too_early_says_which_figure_is_missing(zhang_wei: int) -> None:
    slots = {"requested_slot": "monthly_expenses", "monthly_income": "4000.00"}
    events, said = await validate("直接给我方案", slots, intent="choose_plan")
    assert events == [SlotSet("monthly_expenses", None)]
    assert said == ["utter_offers_need_monthly_expenses"]


async def test_leaving_in_the_middle_is_left_to_the_rules(zhang_wei: int) -> None:
    events, said = await validate(
        "算了 不弄了 明天再说", {"requested_slot": "hardship_months"}, intent="goodbye"
    )
    assert (events, said) == ([], [])


async def test_a_question_in_the_middle_is_left_to_the_rules(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher,
        tracker("为什么要问这些", {"requested_slot": "monthly_income"}, intent="faq"),
        DOMAIN,
    )
    assert events == []
    assert dispatcher.messages == []


# --- offers, choice, confirmation ---------------------------------------------------------


async def test_offers_for_zhang_wei(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionOfferPlans().run(
        dispatcher, tracker(slots=verified(zhang_wei, **ZHANG_WEI), active_loop=None), {}
    )
    offers = events[0]["value"]
    assert [(o["plan"], o["months"], o["monthly_amount"]) for o in offers] == [
        ("personalized_installment", 23, "1024.35")
    ]
    assert events[1:] == [SlotSet("selected_offer", None), SlotSet("negotiation_stage", "offered")]
    assert responses(dispatcher) == [
        "utter_offer_intro",
        "utter_offer_personalized_installment",
        "utter_offer_choices_1",
    ]
    assert dispatcher.messages[0]["affordable"] == "1,050.00"


async def test_no_offer_without_a_verification_on_record(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    other = Tracker(
        sender_id="someone-else",
        slots=verified(zhang_wei, **ZHANG_WEI),
        latest_message={"text": "", "intent": {"name": "inform"}, "entities": []},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )
    events = await ActionOfferPlans().run(dispatcher, other, {})
    assert "utter_offer_intro" not in responses(dispatcher)
    assert FollowupAction("verification_form") in events


async def _terms(debtor_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    offers_events = await ActionOfferPlans().run(
        CollectingDispatcher(),
        tracker(slots=verified(debtor_id, **ZHANG_WEI), active_loop=None),
        {},
    )
    slots = verified(debtor_id, **ZHANG_WEI, offers=offers_events[0]["value"])
    dispatcher = CollectingDispatcher()
    events = await ActionChoosePlan().run(
        dispatcher,
        tracker(
            "选1",
            slots,
            [{"entity": "plan_index", "value": 1, "start": 0, "end": 2}],
            "choose_plan",
            None,
        ),
        {},
    )
    assert responses(dispatcher) == [
        "utter_terms_personalized_installment",
        "utter_terms_card_commitment",
        "utter_terms_missed_installment",
        "utter_confirm_terms",
    ]
    assert events[1] == SlotSet("negotiation_stage", "confirming")
    return slots, events[0]["value"]


async def test_confirmation_records_once_with_the_whole_schedule(zhang_wei: int) -> None:
    slots, selected = await _terms(zhang_wei)
    assert _rows("agreements") == []  # choosing records nothing
    confirming = {**slots, "selected_offer": selected, "negotiation_stage": "confirming"}
    for _ in range(2):  # a repeated confirmation of the same offer records it once
        dispatcher = CollectingDispatcher()
        events = await ActionConfirmAgreement().run(
            dispatcher,
            tracker(
                "确认",
                confirming,
                intent="affirm",
                active_loop=None,
                previous_action="action_choose_plan",
            ),
            {},
        )
        assert responses(dispatcher) == ["utter_agreement_recorded", "utter_collections_paused"]
        assert SlotSet("negotiation_stage", "agreed") in events
    agreements = _rows("agreements")
    assert len(agreements) == 1
    assert dispatcher.messages[0]["reference"] == agreements[0]["reference"]
    installments = _rows("agreement_installments")
    assert len(installments) == 23
    assert sum(Decimal(str(i["amount"])) for i in installments) == Decimal("23560.00")
    assert [a["collections_hold"] for a in _rows("accounts") if a["debtor_id"] == zhang_wei] == [1]
    assert [e["action"] for e in _rows("audit_log")].count("agreement_recorded") == 1


async def test_terms_that_no_longer_hold_are_shown_again_not_recorded(zhang_wei: int) -> None:
    slots, selected = await _terms(zhang_wei)
    tampered = {**selected, "offer": {**selected["offer"], "monthly_amount": "10.00"}}
    dispatcher = CollectingDispatcher()
    await ActionConfirmAgreement().run(
        dispatcher,
        tracker(
            "确认",
            {**slots, "selected_offer": tampered},
            intent="affirm",
            active_loop=None,
            previous_action="action_choose_plan",
        ),
        {},
    )
    assert responses(dispatcher)[0] == "utter_terms_changed"
    assert _rows("agreements") == []


async def test_a_change_of_mind_records_nothing(zhang_wei: int) -> None:
    slots, selected = await _terms(zhang_wei)
    dispatcher = CollectingDispatcher()
    events = await ActionDeclineTerms().run(
        dispatcher,
        tracker("算了", {**slots, "selected_offer": selected}, intent="deny", active_loop=None),
        {},
    )
    assert events == [SlotSet("selected_offer", None), SlotSet("negotiation_stage", "offered")]
    assert responses(dispatcher) == ["utter_terms_declined", "utter_offer_choices_1"]
    assert _rows("agreements") == []


async def test_schedule_before_any_agreement(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    await ActionShowSchedule().run(
        dispatcher, tracker("查看还款计划", verified(zhang_wei), active_loop=None), {}
    )
    assert responses(dispatcher) == ["utter_no_agreement"]


async def test_a_promise_beyond_the_window_is_refused_with_the_last_day(zhang_wei: int) -> None:
    # 张伟 is 45 days overdue, beyond the promise window of the bundled policy.
    far = (context().today() + timedelta(days=90)).isoformat()
    dispatcher = CollectingDispatcher()
    events = await ActionCheckPromise().run(
        dispatcher, tracker("", verified(zhang_wei, promise_date=far), active_loop=None), {}
    )
    assert responses(dispatcher) == ["utter_promise_overdue_too_long"]
    assert events == [SlotSet("promise_date", None), SlotSet("promise_amount", None)]


async def test_a_promise_in_parts_is_shown_and_recorded_as_two_payments(zhang_wei: int) -> None:
    """刘洋 (3,045.00): "明天先还一千，剩下的下周五前还清", confirmed, is one agreement of two."""
    liu_yang = await asyncio.to_thread(_verify_as, "刘洋", "8765", "13600136003")
    today = context().today()
    tomorrow = today + timedelta(days=1)
    friday = today + timedelta(days=7 + (4 - today.weekday()))
    text = "明天先还一千，剩下的下周五前还清"
    entities = [
        {"entity": "date", "value": tomorrow.isoformat(), "start": 0, "end": 2},
        {"entity": "amount", "value": 1000, "start": 4, "end": 6},
        {"entity": "date", "value": friday.isoformat(), "start": 10, "end": 13},
    ]
    slots = verified(liu_yang, promise_date=friday.isoformat(), promise_amount=1000)
    promise = tracker(text, slots, entities, intent="promise_to_pay", active_loop=None)
    promise.events[-1]["parse_data"] = {"intent": {"name": "promise_to_pay"}, "entities": entities}
    dispatcher = CollectingDispatcher()

    events = await ActionCheckPromise().run(dispatcher, promise, {})

    assert responses(dispatcher) == [
        "utter_promise_terms_parts",
        "utter_terms_missed_promise_parts",
        "utter_confirm_terms",
    ]
    shown = dispatcher.messages[0]
    assert (shown["count"], shown["amount"], shown["remaining"]) == (2, "3,045.00", "0.00")
    assert shown["schedule"].splitlines() == [
        f"1. {full_date(tomorrow)}  1,000.00",
        f"2. {full_date(friday)}  2,045.00",
    ]
    selected = events[0]["value"]
    assert selected["offer"]["schedule"] == [
        [1, tomorrow.isoformat(), "1000.00"],
        [2, friday.isoformat(), "2045.00"],
    ]
    confirm = tracker(
        "确认",
        {**slots, "selected_offer": selected, "negotiation_stage": "confirming"},
        intent="affirm",
        active_loop=None,
        previous_action="action_check_promise",
    )
    done = CollectingDispatcher()
    await ActionConfirmAgreement().run(done, confirm, {})
    assert responses(done)[0] == "utter_agreement_recorded"
    [agreement] = _rows("agreements")
    assert (agreement["plan"], agreement["months"]) == ("promise_to_pay", 2)
    assert [(Decimal(str(r["amount"])), r["number"]) for r in _rows("agreement_installments")] == [
        (Decimal("1000.00"), 1),
        (Decimal("2045.00"), 2),
    ]


@pytest.mark.parametrize(
    ("index", "text", "plan"),
    [
        (2, "第二个", "personalized_installment"),
        (None, "分期那个", "personalized_installment"),
        (None, "我选一次性结清的那个", "lump_sum_settlement"),
        (None, "最后一个", "personalized_installment"),
        (None, "月供最低的", "personalized_installment"),
        (None, "随便", None),
        (5, "第五个", None),
    ],
)
def test_choosing_by_number_position_or_kind(
    index: int | None, text: str, plan: str | None
) -> None:
    offers = [
        {"plan": "lump_sum_settlement", "one_off": True, "monthly_amount": "51050.00", "months": 1},
        {
            "plan": "personalized_installment",
            "one_off": False,
            "monthly_amount": "2059.26",
            "months": 27,
        },
    ]
    chosen = choose(offers, index, text)
    assert (chosen or {}).get("plan") == plan


async def test_a_second_policy_file_changes_the_offers(zhang_wei: int, tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["affordability"]["ratio"] = "0.50"
    data["fee_waiver"]["share"] = "1.00"
    second = tmp_path / "policy.yml"
    second.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    slots = verified(zhang_wei, **{**ZHANG_WEI, "available_funds": "23000.00"})
    with use(replace(context(), policy=load_policy(second))):
        events = await ActionOfferPlans().run(
            CollectingDispatcher(), tracker(slots=slots, active_loop=None), {}
        )
    offers = [(o["plan"], o["months"], o["total_payable"]) for o in events[0]["value"]]
    # 750 a month affordable instead of 1050, and the whole 700 of fees waived.
    assert offers == [("fee_waiver", 1, "22860.00"), ("personalized_installment", 32, "23560.00")]


@pytest.mark.parametrize(
    ("said", "amount", "response", "proposed", "months"),
    [
        ("每个月只能还八百", 800, "utter_counter_fits", "800.00", 30),
        ("每个月还两千行不行", 2000, "utter_counter_capped", "unknown", 23),
        ("每个月只能还三百", 300, "utter_counter_too_low", "unknown", 23),
    ],
)
async def test_a_counter_proposal_is_answered_honestly(
    zhang_wei: int, said: str, amount: int, response: str, proposed: str, months: int
) -> None:
    dispatcher = CollectingDispatcher()
    entities = [
        {"entity": "amount", "value": amount, "start": said.index("还") + 1, "end": len(said)}
    ]
    events = await ActionReviseOffers().run(
        dispatcher,
        tracker(said, verified(zhang_wei, **ZHANG_WEI), entities, active_loop=None),
        {},
    )
    assert responses(dispatcher)[0] == response
    assert events[0] == SlotSet("proposed_monthly", proposed)
    offers = next(e["value"] for e in events if e["name"] == "offers")
    assert [o["months"] for o in offers if o["plan"] == "personalized_installment"] == [months]
    assert events[-1] == SlotSet("negotiation_stage", "offered")


async def test_the_same_figures_again_change_nothing(zhang_wei: int) -> None:
    """ "我收入就是四千" after the offers: no "recomputed after your correction", no new offers."""
    said = "我收入就是四千"
    entities = [{"entity": "amount", "value": 4000, "start": 5, "end": 7}]
    shown = {**ZHANG_WEI, "negotiation_stage": "offered"}
    dispatcher = CollectingDispatcher()
    events = await ActionReviseOffers().run(
        dispatcher, tracker(said, verified(zhang_wei, **shown), entities, active_loop=None), {}
    )
    assert responses(dispatcher) == ["utter_figures_unchanged"]
    assert events == []


async def test_a_changed_figure_is_recomputed(zhang_wei: int) -> None:
    said = "我收入其实是五千"
    entities = [{"entity": "amount", "value": 5000, "start": 6, "end": 8}]
    dispatcher = CollectingDispatcher()
    events = await ActionReviseOffers().run(
        dispatcher, tracker(said, verified(zhang_wei, **ZHANG_WEI), entities, active_loop=None), {}
    )
    assert responses(dispatcher)[0] == "utter_offers_recomputed"
    assert events[0] == SlotSet("monthly_income", "5000.00")


async def test_a_yes_to_something_else_is_not_a_yes_to_the_terms(zhang_wei: int) -> None:
    """Terms shown, then a question answered: "好的" shows the terms again, records nothing."""
    slots, selected = await _terms(zhang_wei)
    confirming = {**slots, "selected_offer": selected, "negotiation_stage": "confirming"}
    dispatcher = CollectingDispatcher()
    events = await ActionConfirmAgreement().run(
        dispatcher,
        tracker("好的", confirming, intent="affirm", active_loop=None, previous_action="utter_faq"),
        {},
    )
    assert responses(dispatcher)[-1] == "utter_confirm_terms"
    assert SlotSet("negotiation_stage", "confirming") in events
    assert _rows("agreements") == []


async def test_distress_in_the_form_is_never_taken_as_an_answer(zhang_wei: int) -> None:
    entities = [{"entity": "amount", "value": 2000, "start": 4, "end": 6}]
    for intent, text in (
        ("express_distress", "我一个月才两千，真的不想活了"),
        ("request_human", "转人工"),
        ("faq", "为什么要问这些"),
    ):
        dispatcher = CollectingDispatcher()
        events = await ValidateCircumstancesForm().run(
            dispatcher,
            tracker(
                text,
                {"requested_slot": "hardship_reason"},
                entities if intent == "express_distress" else [],
                intent,
            ),
            DOMAIN,
        )
        assert events == [] and dispatcher.messages == [], intent


# --- before the form ----------------------------------------------------------------------


def _verify_as(name: str, id_last4: str, mobile: str) -> int:
    result = asyncio.run(verify_identity(context().database, SENDER, name, id_last4, mobile))
    assert result.status == "verified"
    return int(result.debtor_id)  # type: ignore[arg-type]


async def test_the_form_opens_for_a_debtor_it_can_lead_to_an_offer(zhang_wei: int) -> None:
    dispatcher = CollectingDispatcher()
    events = await start_circumstances(dispatcher, tracker(active_loop=None), zhang_wei)
    assert events == [FollowupAction("circumstances_form")]
    assert responses(dispatcher) == ["utter_circumstances_intro"]
    assert _rows("negotiation_proposals") == []


async def test_broken_plans_go_to_a_negotiator_without_the_form(zhang_wei: int) -> None:
    """王芳 has broken two plans: no answer could lead to an offer the assistant may make."""
    wang_fang = await asyncio.to_thread(_verify_as, "王芳", "4321", "13700137002")
    text = "做生意亏了 一个月收入六千 想协商一下"
    amount = {"entity": "amount", "value": 6000, "start": 11, "end": 13}
    assert text[amount["start"] : amount["end"]] == "六千"
    reason = {"entity": "hardship_reason", "value": "business_failure", "start": 0, "end": 5}
    said = UserUttered(text, {"intent": {"name": "state_hardship"}, "entities": [reason, amount]})
    before = tracker(active_loop=None, intent="inform")
    before.events.insert(0, said)
    dispatcher = CollectingDispatcher()

    events = await start_circumstances(dispatcher, before, wang_fang)

    [proposal] = _rows("negotiation_proposals")
    assert proposal["reason"] == "broken_plans" and proposal["debtor_id"] == wang_fang
    details = yaml.safe_load(proposal["details"])
    assert details["draft"] is None
    assert details["circumstances"]["monthly_income"] == "6000.00"
    assert details["circumstances"]["hardship_reason"] == "business_failure"
    [case] = _rows("handoff_cases")
    assert case["reason"] == "beyond_authority" and case["debtor_id"] == wang_fang
    summary = yaml.safe_load(case["summary"])
    assert summary["proposal"]["reference"] == proposal["reference"]
    assert summary["circumstances"]["monthly_income"] == "6000.00"
    assert responses(dispatcher)[:2] == [
        "utter_proposal_broken_plans",
        "utter_proposal_prepared_before_form",
    ]
    assert dispatcher.messages[1]["reference"] == proposal["reference"]
    assert responses(dispatcher)[2] in ("utter_handoff_waiting", "utter_handoff_after_hours")
    assert "utter_circumstances_intro" not in responses(dispatcher)
    assert FollowupAction("circumstances_form") not in events
    assert SlotSet("monthly_income", "6000.00") in events
    assert events[-3:] == [
        SlotSet("handoff_reference", case["reference"]),
        SlotSet("requested_slot", None),
        ConversationPaused(),
    ]


async def test_a_range_is_taken_by_the_rule_and_the_reply_says_which_figure(zhang_wei: int) -> None:
    text = "一个月四五千吧"
    entities = [
        {"entity": "months", "value": 1, "start": 0, "end": 3},
        {"entity": "amount", "value": 4000, "low": 4000, "high": 5000, "start": 3, "end": 6},
    ]
    dispatcher = CollectingDispatcher()
    events = await ValidateCircumstancesForm().run(
        dispatcher, tracker(text, {"requested_slot": "monthly_income"}, entities), DOMAIN
    )
    assert events == [SlotSet("monthly_income", "4000.00")]
    assert responses(dispatcher) == ["utter_range_taken_monthly_income"]
    assert dispatcher.messages[0]["value"] == "4,000.00"


async def test_a_hardship_said_to_end_at_a_time_is_counted_and_said(zhang_wei: int) -> None:
    """ "过完年应该能找到工作" on 3 December: until February, and the reply says so."""
    december = datetime(2026, 12, 3, 10, 0, tzinfo=BEIJING)
    with use(replace(context(), now=lambda: december)):
        events, said = await validate("过完年应该能找到工作", {"requested_slot": "hardship_months"})
    assert events == [SlotSet("hardship_months", "2")]
    assert said == ["utter_horizon_taken_hardship_months"]


def test_a_one_off_sum_above_the_funds_named_says_what_it_would_take() -> None:
    """5,000 at hand and 3,500 a month: a one-off 7,800 is shown with the 2,800 it lacks."""
    policy = load_policy()
    account = AccountPosition(1, "credit_card", Decimal("7000"), Decimal("600"), Decimal("400"), 75)
    found = Circumstances(
        Decimal("9000"),
        Decimal("4000"),
        hardship_reason="unemployment",
        hardship_months=6,
        available_funds=Decimal("5000"),
    )
    assessment = assess(account, found, date(2026, 12, 3), policy)
    dispatcher = CollectingDispatcher()
    show_offers(dispatcher, assessment, policy, found)
    assert responses(dispatcher) == [
        "utter_offer_intro",
        "utter_offer_fee_waiver",
        "utter_offer_beyond_funds",
        "utter_offer_personalized_installment",
        "utter_offer_choices_2",
    ]
    remark = dispatcher.messages[2]
    assert (remark["funds"], remark["gap"]) == ("5,000.00", "2,800.00")
    assert remark["first_due"] == dispatcher.messages[1]["first_due"]
    # Funds enough for the whole sum: no remark.
    enough = replace(found, available_funds=Decimal("7800"))
    dispatcher = CollectingDispatcher()
    show_offers(dispatcher, assess(account, enough, date(2026, 12, 3), policy), policy, enough)
    assert "utter_offer_beyond_funds" not in responses(dispatcher)
