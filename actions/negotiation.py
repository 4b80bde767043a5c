"""Circumstances, offers, choice, counter-proposal, terms, confirmation and schedules.

Thin actions over `bot.domain.circumstances`, `bot.domain.negotiation` and `bot.store.agreements`:
they read slots, call the engine, and send the responses of domain.yml. Nothing
is written to the database before the debtor explicitly confirms the terms, and
the confirmed terms are computed again from the current balances first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import database, full_date, money, today_in_beijing
from actions.escalation import hand_off
from bot.domain.circumstances import (
    FIELDS,
    HARDSHIP_DETAIL,
    HARDSHIP_MONTHS,
    HARDSHIP_REASON,
    INCOME,
    LEFT_OPEN,
    MAX_AMOUNT,
    PROPOSED_MONTHLY,
    UNKNOWN,
    already_said,
    cannot_say,
    circumstances,
    extract,
    extract_with_ranges,
    hardship_from,
    implausible,
    left_open,
    resumes,
    still_needed,
)
from bot.domain.negotiation import (
    AccountPosition,
    Assessment,
    Circumstances,
    Ineligible,
    Installment,
    Offer,
    PromisePart,
    Proposal,
    assess,
    beyond_authority,
    check_promise,
    check_promise_in_parts,
    counter_offer,
    own_limit_applies,
)
from bot.domain.policy import Policy, current_policy
from bot.domain.promises import promise_parts
from bot.store import audit
from bot.store.accounts import AccountSummary, account_summaries
from bot.store.agreements import (
    account_to_negotiate,
    latest_agreement,
    position,
    record_agreement,
    record_proposal,
)
from bot.store.identity import is_verified

#: The policy is validated when the action server starts, not at the first offer.
current_policy()

FORM = "circumstances_form"
STAGE = "negotiation_stage"
OFFERS = "offers"
SELECTED = "selected_offer"
PROMISE_DATE = "promise_date"
PROMISE_AMOUNT = "promise_amount"
#: Intents that interrupt the form (answered by rules) rather than answer its question.
INTERRUPTIONS = {
    "faq",
    "bot_challenge",
    "request_human",
    "express_distress",
    "dispute_debt",
    "complain",
    "refuse_payment",
    "goodbye",
    "ask_account_status",
}
#: Intents that ask for the plans now ("有哪些方案 直接说吧"), in the middle of the form.
WANTS_THE_OFFERS = {"request_negotiation", "choose_plan", "ask_repayment_plan"}
#: Interruptions that win even over figures in the same message.
ALWAYS_INTERRUPT = {"request_human", "express_distress", "dispute_debt", "complain"}
#: Words that pick a plan by kind ("分期那个"), most specific first.
PLAN_WORDS = (
    ("lump_sum_settlement", ("一次性", "结清", "打折")),
    ("loan_extension", ("延期", "展期", "宽限", "缓")),
    ("fee_waiver", ("减免", "罚息", "违约金")),
    ("promise_to_pay", ("承诺", "自己还", "月底")),
    ("personalized_installment", ("分期", "停息", "挂账", "60期", "每月")),
)


# --- shared helpers --------------------------------------------------------------------


async def _verified_account(
    tracker: Tracker, debtor_id: int | None = None
) -> tuple[int, AccountSummary | None] | None:
    """The verified debtor and the account to negotiate, or None if not verified.

    `debtor_id` is given by the action that has just verified the debtor, before
    its slot events are applied; the database must confirm it either way.
    """
    if debtor_id is None:
        debtor_id = tracker.get_slot("debtor_id")
        if not tracker.get_slot("verified") or debtor_id is None:
            return None
    if not await is_verified(database(), tracker.sender_id, int(debtor_id)):
        return None
    accounts = await account_summaries(database(), int(debtor_id))
    return int(debtor_id), account_to_negotiate(accounts)


def _slots(tracker: Tracker) -> dict[str, Any]:
    return {name: tracker.get_slot(name) for name in FIELDS}


def offer_values(offer: Offer) -> dict[str, Any]:
    """The figures an offer's responses show."""
    return {
        "monthly": money(offer.monthly_amount),
        "months": offer.months,
        "total": money(offer.total_payable),
        "waived": money(offer.amount_waived),
        "first_due": full_date(offer.first_due),
        "last_due": full_date(offer.last_due),
        "deferral": offer.deferral_months,
        "regular": money(offer.concurrent_monthly),
        "currency": offer.currency,
    }


def account_values(account: AccountPosition) -> dict[str, Any]:
    return {
        "overdue_total": money(account.overdue_total),
        "principal": money(account.overdue_principal),
        "interest": money(account.interest),
        "penalty_fees": money(account.penalty_fees),
        "currency": account.currency,
        "days_past_due": account.days_past_due,
    }


def _offer_buttons(count: int) -> str:
    return f"utter_offer_choices_{count}"


def show_offers(
    dispatcher: CollectingDispatcher,
    assessment: Assessment,
    policy: Policy,
    found: Circumstances,
) -> list[EventType]:
    """Send the offers as numbered choices and keep them for the debtor's answer.

    The introduction says whose limit the plans keep to: the debtor's own
    monthly figure when it is below the policy's share of what is left.
    """
    own = own_limit_applies(found, policy)
    dispatcher.utter_message(
        response="utter_offer_intro_own_limit" if own else "utter_offer_intro",
        affordable=money(assessment.affordable_monthly),
        ratio_percent=int(policy.affordability.ratio * 100),
    )
    for index, offer in enumerate(assessment.offers, start=1):
        dispatcher.utter_message(
            response=f"utter_offer_{offer.plan}", index=index, **offer_values(offer)
        )
    dispatcher.utter_message(response=_offer_buttons(len(assessment.offers)))
    return [
        SlotSet(OFFERS, [offer.to_dict() for offer in assessment.offers]),
        SlotSet(SELECTED, None),
        SlotSet(STAGE, "offered"),
    ]


def _ineligible_record(items: Iterable[Ineligible]) -> list[dict[str, Any]]:
    return [{"plan": i.plan, "reason": i.reason, "needs": i.needs} for i in items]


async def offer_or_propose(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    debtor_id: int,
    summary: AccountSummary,
    assessment: Assessment,
    found: Circumstances,
) -> list[EventType]:
    """Show the eligible offers, or prepare the case for a negotiator if there are none.

    `found` are the circumstances the assessment was made from (this turn's
    corrections included), which the proposal records.
    """
    policy = current_policy()
    if assessment.offers:
        await audit.record(
            database(),
            audit.BOT_ACTOR,
            "offers_shown",
            tracker.sender_id,
            debtor_id,
            {
                "account_id": summary.account_id,
                "plans": [offer.plan for offer in assessment.offers],
                "affordable_monthly": assessment.affordable_monthly,
            },
        )
        return show_offers(dispatcher, assessment, policy, found)
    if assessment.proposal is None:  # nothing overdue: nothing to offer or propose
        dispatcher.utter_message(response="utter_no_accounts")
        return [SlotSet(OFFERS, None), SlotSet(SELECTED, None), SlotSet(STAGE, None)]
    reference = await record_proposal(
        database(),
        conversation_id=tracker.sender_id,
        debtor_id=debtor_id,
        account=assessment.account,
        circumstances=found,
        proposal=assessment.proposal,
        ineligible=_ineligible_record(assessment.ineligible),
        today=today_in_beijing(),
    )
    reason = assessment.proposal.reason
    known = {"broken_plans", "unaffordable", "no_affordable_plan", "waiver_too_large"}
    dispatcher.utter_message(
        response=f"utter_proposal_{reason if reason in known else 'other'}",
        affordable=money(assessment.affordable_monthly),
    )
    dispatcher.utter_message(response="utter_proposal_prepared", reference=reference)
    # The case summary quotes the proposal just stored.
    handoff, _ = await hand_off(dispatcher, tracker, "beyond_authority")
    return [SlotSet(OFFERS, None), SlotSet(SELECTED, None), SlotSet(STAGE, None), *handoff]


# --- the circumstances form ---------------------------------------------------------------


def _negotiation_messages(tracker: Tracker) -> list[dict[str, Any]]:
    """The debtor's messages since they asked to negotiate, outside identity verification."""
    messages: list[dict[str, Any]] = []
    loop: str | None = None
    for event in tracker.events:
        kind = event.get("event")
        if kind == "active_loop":
            loop = event.get("name")
        elif kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent in ("request_negotiation", "state_hardship"):
                messages = []
            if loop == "verification_form" or intent not in (
                "request_negotiation",
                "state_hardship",
                "inform",
            ):
                continue
            messages.append(event)
    return messages


def _figures_in(messages: Iterable[dict[str, Any]], asked: str | None) -> dict[str, Any]:
    """Every circumstance the messages state, later ones correcting earlier ones."""
    found: dict[str, Any] = {}
    for message in messages:
        parse = message.get("parse_data") or message
        text = message.get("text") or ""
        entities = parse.get("entities") or []
        found.update(extract(text, entities, asked))
        hardship = hardship_from(entities, text, asked)
        if hardship:
            found[HARDSHIP_REASON], found[HARDSHIP_DETAIL] = hardship
    return found


class ValidateCircumstancesForm(FormValidationAction):
    """Fills the circumstances form from whatever the debtor writes.

    Every message is read for every figure (`bot.domain.circumstances.extract`), so one
    message can answer several questions and a later figure corrects an earlier
    one. When the form starts, the messages that led to it (for example the
    hardship the debtor described before verifying) are read the same way.
    Implausible figures are cleared with a response that says what is wrong.
    """

    def name(self) -> str:
        return "validate_circumstances_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        asked = tracker.get_slot("requested_slot")
        starting = tracker.active_loop_name != FORM
        if starting:
            messages = _negotiation_messages(tracker)
            asked = None
        else:
            messages = [{"text": tracker.latest_message.get("text"), **tracker.latest_message}]
        found = _figures_in(messages, asked)
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent in ALWAYS_INTERRUPT or (
            intent in INTERRUPTIONS and not found.keys() - {HARDSHIP_REASON, HARDSHIP_DETAIL}
        ):
            # Distress or a request for a person is never read as an answer; a
            # question is answered unless it also carried a figure.
            return []
        figures = found.keys() - {HARDSHIP_REASON, HARDSHIP_DETAIL}
        if not starting and intent in WANTS_THE_OFFERS and not figures:
            # Read without the question's position: "有哪些方案" is not a hardship reason.
            return _offers_now(dispatcher, tracker, asked, _figures_in(messages, None))
        if not found:
            if starting or intent in INTERRUPTIONS or not asked:
                return []
            return _no_answer(dispatcher, tracker, asked)
        known = {**_slots(tracker), **found}
        events: list[EventType] = []
        policy = current_policy()
        for name, value in found.items():
            problem = implausible(name, value, known, policy) if name in FIELDS else None
            if problem:
                dispatcher.utter_message(response=f"utter_implausible_{problem}")
                value = None
                if problem == "expenses_too_large":
                    # Either figure may be the wrong one: both are asked again, income
                    # first, so a mistyped income ("1" for 1万) cannot block the form.
                    events.append(SlotSet(INCOME, None))
            elif name in _ranged(tracker, asked, starting):
                # "四五千": say which figure was taken, so the debtor can correct it.
                shown = value if name == HARDSHIP_MONTHS else money(Decimal(value))
                dispatcher.utter_message(response=f"utter_range_taken_{name}", value=shown)
            events.append(SlotSet(name, value))
        return events


def _ranged(tracker: Tracker, asked: str | None, starting: bool) -> set[str]:
    """The fields the latest message gave as a range ("四五千", "一两年")."""
    if starting:
        return set()
    latest = tracker.latest_message
    return extract_with_ranges(latest.get("text") or "", latest.get("entities") or [], asked)[1]


def _no_answer(dispatcher: CollectingDispatcher, tracker: Tracker, asked: str) -> list[EventType]:
    """A message that answers nothing: repair, never the same prompt a third time."""
    text = tracker.latest_message.get("text") or ""
    again = _prompted_again(tracker, asked)
    if asked in LEFT_OPEN and (cannot_say(text) or again):
        # An optional question is left open rather than asked once more.
        dispatcher.utter_message(response="utter_left_open")
        return [SlotSet(asked, LEFT_OPEN[asked])]
    if already_said(text):
        dispatcher.utter_message(response="utter_sorry_asked_again")
    elif resumes(text):
        dispatcher.utter_message(response="utter_resume_questions")
    elif cannot_say(text):
        dispatcher.utter_message(response=f"utter_estimate_{asked}")
    elif again:
        dispatcher.utter_message(response=f"utter_invalid_again_{asked}")
    else:
        dispatcher.utter_message(response=f"utter_invalid_{asked}")
    return [SlotSet(asked, None)]


def _prompted_again(tracker: Tracker, asked: str) -> bool:
    """Whether `asked` was already asked again since it was last answered.

    Answers to other questions in between do not count: the open one is still open.
    """
    repairs = {f"utter_{kind}_{asked}" for kind in ("invalid", "estimate", "invalid_again")}
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "bot" and (event.get("metadata") or {}).get("utter_action") in repairs:
            return True
        if kind == "slot" and event.get("name") == asked and event.get("value") is not None:
            return False
        if kind == "active_loop" and event.get("name") != FORM:
            return False
    return False


def _offers_now(
    dispatcher: CollectingDispatcher, tracker: Tracker, asked: str | None, found: dict[str, Any]
) -> list[EventType]:
    """ "有哪些方案" in the middle: the offers from what is known, or the one figure missing."""
    known = {**_slots(tracker), **found}
    missing = still_needed(known)
    if missing:
        dispatcher.utter_message(response=f"utter_offers_need_{missing[0]}")
        return [SlotSet(asked, None)] if asked else []
    dispatcher.utter_message(response="utter_offers_with_what_is_known")
    return [SlotSet(name, value) for name, value in {**found, **left_open(known)}.items()]


async def start_circumstances(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int | None = None
) -> list[EventType]:
    """Explain why the questions are asked, then open the circumstances form.

    An account that no answer could bring within the assistant's authority (see
    `beyond_authority`) goes to a negotiator at once, with a proposal holding
    what the debtor has said so far, instead of a form that cannot end in an offer.
    """
    context = await _verified_account(tracker, debtor_id)
    if context is not None and context[1] is not None:
        account = position(context[1])
        reason = beyond_authority(account, current_policy())
        if reason is not None:
            return await _refer_before_the_form(dispatcher, tracker, context[0], account, reason)
    dispatcher.utter_message(response="utter_circumstances_intro")
    return [FollowupAction(FORM)]


async def _refer_before_the_form(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    debtor_id: int,
    account: AccountPosition,
    reason: str,
) -> list[EventType]:
    said = {
        name: value
        for name, value in _figures_in(_negotiation_messages(tracker), None).items()
        if value is not None
    }
    reference = await record_proposal(
        database(),
        conversation_id=tracker.sender_id,
        debtor_id=debtor_id,
        account=account,
        circumstances=said,
        proposal=Proposal(reason, None),
        ineligible=[],
        today=today_in_beijing(),
    )
    dispatcher.utter_message(response=f"utter_proposal_{reason}")
    dispatcher.utter_message(response="utter_proposal_prepared_before_form", reference=reference)
    # The case is opened for the debtor just verified, with what they said.
    verified = tracker.copy()
    verified.slots.update({"verified": True, "debtor_id": debtor_id, **said})
    handoff, _ = await hand_off(dispatcher, verified, "beyond_authority")
    slots = [SlotSet(name, value) for name, value in said.items()]
    return [*slots, SlotSet(OFFERS, None), SlotSet(SELECTED, None), SlotSet(STAGE, None), *handoff]


class ActionOfferPlans(Action):
    """Once the circumstances are known: the offers, or a proposal for a negotiator."""

    def name(self) -> str:
        return "action_offer_plans"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        from actions.verification import start_verification

        context = await _verified_account(tracker)
        if context is None:
            return await start_verification(dispatcher, tracker, "request_negotiation")
        debtor_id, summary = context
        found = circumstances(_slots(tracker))
        if summary is None:
            dispatcher.utter_message(response="utter_no_accounts")
            return []
        if found is None:
            return [FollowupAction(FORM)]
        assessment = assess(position(summary), found, today_in_beijing(), current_policy())
        return await offer_or_propose(dispatcher, tracker, debtor_id, summary, assessment, found)


# --- choosing, countering, confirming -------------------------------------------------------


def choose(offers: list[dict[str, Any]], index: int | None, text: str) -> dict[str, Any] | None:
    """The offer the debtor picked by number, by position words or by kind."""
    if index is not None:
        return offers[index - 1] if 1 <= index <= len(offers) else None
    if "最后" in text:
        return offers[-1]
    if "中间" in text and len(offers) == 3:
        return offers[1]
    if any(word in text for word in ("最低", "最少", "最长", "最多期")):
        recurring = [o for o in offers if not o["one_off"]]
        if recurring:
            return min(recurring, key=lambda o: (float(o["monthly_amount"]), o["months"]))
    for plan, words in PLAN_WORDS:
        if any(word in text for word in words):
            matching = [o for o in offers if o["plan"] == plan]
            if len(matching) == 1:
                return matching[0]
    return None


def _plan_index(tracker: Tracker) -> int | None:
    value = next(tracker.get_latest_entity_values("plan_index"), None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def show_terms(
    dispatcher: CollectingDispatcher, offer: Offer, account: AccountPosition
) -> list[EventType]:
    """The agreement's full terms, then a request for explicit confirmation."""
    values = {**account_values(account), **offer_values(offer)}
    in_parts = offer.plan == "promise_to_pay" and not offer.one_off
    if in_parts:
        values["schedule"] = _schedule_lines(offer.schedule)
    dispatcher.utter_message(
        response="utter_terms_promise_to_pay_parts" if in_parts else f"utter_terms_{offer.plan}",
        **values,
    )
    if account.product == "credit_card" and not offer.one_off and not in_parts:
        dispatcher.utter_message(response="utter_terms_card_commitment")
    if offer.one_off:
        missed = "one_off"
    else:
        missed = "promise_parts" if in_parts else "installment"
    dispatcher.utter_message(response=f"utter_terms_missed_{missed}")
    dispatcher.utter_message(response="utter_confirm_terms")
    return [
        SlotSet(SELECTED, {"offer_id": uuid.uuid4().hex, "offer": offer.to_dict()}),
        SlotSet(STAGE, "confirming"),
    ]


class ActionChoosePlan(Action):
    """The debtor picked an offer: show its terms and ask for confirmation."""

    def name(self) -> str:
        return "action_choose_plan"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        offers = tracker.get_slot(OFFERS) or []
        if not offers:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return []
        context = await _verified_account(tracker)
        summary = context[1] if context else None
        if summary is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return [SlotSet(OFFERS, None), SlotSet(STAGE, None)]
        chosen = choose(offers, _plan_index(tracker), tracker.latest_message.get("text") or "")
        if chosen is None:
            dispatcher.utter_message(response="utter_choose_plan_unclear", count=len(offers))
            dispatcher.utter_message(response=_offer_buttons(len(offers)))
            return []
        return show_terms(dispatcher, Offer.from_dict(chosen), position(summary))


def _recomputed(tracker: Tracker, account: AccountPosition, shown: Offer) -> Offer | None:
    """The same plan computed again from today's figures, or None if no longer offered."""
    policy, today = current_policy(), today_in_beijing()
    if shown.plan == "promise_to_pay" and tracker.get_slot(PROMISE_DATE):
        parts = [(item.amount, item.due_date) for item in shown.schedule]
        result = check_promise_in_parts(account, parts, today, policy)
        return result if isinstance(result, Offer) else None
    found = circumstances(_slots(tracker))
    if found is None:
        return None
    for offer in assess(account, found, today, policy).offers:
        if offer.plan == shown.plan:
            return offer
    return None


#: Actions after which the last thing the debtor saw was the terms and their question.
SHOWS_TERMS = {
    "action_choose_plan",
    "action_check_promise",
    "action_verify_identity",
    "action_start_verification",
    "action_confirm_agreement",
}


def answers_the_terms(tracker: Tracker) -> bool:
    """Whether the latest message answers the terms, i.e. came right after them."""
    seen_user = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return False
            seen_user = True
        elif kind == "action" and seen_user and event.get("name") != "action_listen":
            return event.get("name") in SHOWS_TERMS
    return False


class ActionConfirmAgreement(Action):
    """Record the agreement the debtor explicitly confirmed, exactly as shown."""

    def name(self) -> str:
        return "action_confirm_agreement"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        selected = tracker.get_slot(SELECTED)
        context = await _verified_account(tracker)
        if not selected or context is None or context[1] is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return [SlotSet(SELECTED, None), SlotSet(STAGE, None)]
        debtor_id, summary = context[0], context[1]
        account = position(summary)
        shown = Offer.from_dict(selected["offer"])
        if not answers_the_terms(tracker):
            # A "好" to something else (a question, a hotline, a person) is not a yes
            # to the terms: they are shown again and must be confirmed as such.
            return show_terms(dispatcher, shown, account)
        current = _recomputed(tracker, account, shown)
        if current is None or current.to_dict() != shown.to_dict():
            dispatcher.utter_message(response="utter_terms_changed")
            if current is None:
                return [SlotSet(SELECTED, None), SlotSet(STAGE, None), SlotSet(OFFERS, None)]
            return show_terms(dispatcher, current, account)
        recorded = await record_agreement(
            database(),
            offer_id=str(selected["offer_id"]),
            conversation_id=tracker.sender_id,
            debtor_id=debtor_id,
            offer=current,
            account=account,
            circumstances=circumstances(_slots(tracker)),
            today=today_in_beijing(),
        )
        dispatcher.utter_message(
            response="utter_agreement_recorded",
            reference=recorded.reference,
            first_due=full_date(recorded.first_due),
            first_amount=money(recorded.schedule[0].amount),
            months=recorded.months,
        )
        dispatcher.utter_message(response="utter_collections_paused")
        return [
            SlotSet(SELECTED, None),
            SlotSet(OFFERS, None),
            SlotSet(STAGE, "agreed"),
            SlotSet(PROMISE_DATE, None),
            SlotSet(PROMISE_AMOUNT, None),
        ]


class ActionDeclineTerms(Action):
    """The debtor changed their mind at the terms: nothing is recorded, the offers stay."""

    def name(self) -> str:
        return "action_decline_terms"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        offers = tracker.get_slot(OFFERS) or []
        if offers:
            dispatcher.utter_message(response="utter_terms_declined")
            dispatcher.utter_message(response=_offer_buttons(len(offers)))
            return [SlotSet(SELECTED, None), SlotSet(STAGE, "offered")]
        dispatcher.utter_message(response="utter_promise_declined")
        return [
            SlotSet(SELECTED, None),
            SlotSet(STAGE, None),
            SlotSet(PROMISE_DATE, None),
            SlotSet(PROMISE_AMOUNT, None),
        ]


class ActionReviseOffers(Action):
    """A counter-proposal or a corrected figure after the offers: compute them again."""

    def name(self) -> str:
        return "action_revise_offers"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        context = await _verified_account(tracker)
        if context is None or context[1] is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return []
        debtor_id, summary = context[0], context[1]
        message = tracker.latest_message
        found = extract(message.get("text") or "", message.get("entities") or [], None)
        if not found:
            dispatcher.utter_message(response="utter_revise_unclear")
            return []
        slots = {**_slots(tracker), **found}
        policy = current_policy()
        events: list[EventType] = []
        for name, value in found.items():
            problem = implausible(name, value, slots, policy)
            if problem:
                dispatcher.utter_message(response=f"utter_implausible_{problem}")
                return []
            events.append(SlotSet(name, value))
        current = circumstances(slots)
        if current is None:
            return [*events, FollowupAction(FORM)]
        account = position(summary)
        if found.get(PROPOSED_MONTHLY) is not None and current.proposed_monthly is not None:
            assessment, keep = counter(dispatcher, account, current, policy)
            if not keep:
                # The offers shown are those without the debtor's figure; the slots
                # must say so, or the confirmation would compute different terms.
                events = [e for e in events if e["name"] != PROPOSED_MONTHLY]
                events.append(SlotSet(PROPOSED_MONTHLY, UNKNOWN))
                current = replace(current, proposed_monthly=None)
        else:
            assessment = assess(account, current, today_in_beijing(), policy)
            dispatcher.utter_message(response="utter_offers_recomputed")
        shown = await offer_or_propose(dispatcher, tracker, debtor_id, summary, assessment, current)
        return [*events, *shown]


def counter(
    dispatcher: CollectingDispatcher,
    account: AccountPosition,
    current: Circumstances,
    policy: Policy,
) -> tuple[Assessment, bool]:
    """Answer a counter-proposal honestly; the offers to show, and whether it stands.

    It fits (the plans are recomputed with it), it is more than the debtor's own
    figures allow (the plans stay within what they allow), or no plan can cover the
    debt with it (the earlier offers are shown again).
    """
    today = today_in_beijing()
    proposed = current.proposed_monthly
    assert proposed is not None
    baseline = assess(account, replace(current, proposed_monthly=None), today, policy)
    if proposed > baseline.affordable_monthly:
        dispatcher.utter_message(
            response="utter_counter_capped",
            proposed=money(proposed),
            affordable=money(baseline.affordable_monthly),
        )
        return baseline, False
    assessment = counter_offer(account, current, proposed, today, policy)
    recurring = [offer for offer in assessment.offers if not offer.one_off]
    if recurring:
        dispatcher.utter_message(
            response="utter_counter_fits",
            proposed=money(proposed),
            monthly=money(recurring[0].monthly_amount),
            months=recurring[0].months,
        )
        return assessment, True
    needed = [Decimal(i.needs["monthly"]) for i in assessment.ineligible if "monthly" in i.needs]
    if needed:
        dispatcher.utter_message(
            response="utter_counter_too_low", proposed=money(proposed), needed=money(min(needed))
        )
    else:
        dispatcher.utter_message(response="utter_counter_does_not_fit", proposed=money(proposed))
    return baseline, False


# --- promise to pay, schedule ---------------------------------------------------------------


async def start_promise(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int
) -> list[EventType]:
    """After verification: check the promised date and amount, or ask for the date."""
    if not tracker.get_slot(PROMISE_DATE):
        return [FollowupAction("promise_form")]
    return await promise_terms(dispatcher, tracker, debtor_id)


def _promise_amount(value: Any) -> Decimal | None:
    """The promised amount as money, or None (the whole overdue total) if unusable."""
    if value is None or isinstance(value, (bool, float)):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or not Decimal(0) < amount < MAX_AMOUNT:
        return None
    return amount


class ActionCheckPromise(Action):
    """Check a promise to pay against the policy and show its terms for confirmation."""

    def name(self) -> str:
        return "action_check_promise"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return await promise_terms(dispatcher, tracker)


async def promise_terms(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int | None = None
) -> list[EventType]:
    """The promise's terms for confirmation, or why the policy does not allow it."""
    from actions.verification import start_verification

    context = await _verified_account(tracker, debtor_id)
    if context is None:
        return await start_verification(dispatcher, tracker, "promise_to_pay")
    _, summary = context
    if summary is None:
        dispatcher.utter_message(response="utter_no_accounts")
        return []
    account = position(summary)
    try:
        due = date.fromisoformat(str(tracker.get_slot(PROMISE_DATE)))
    except ValueError:
        return [SlotSet(PROMISE_DATE, None), FollowupAction("promise_form")]
    amount = _promise_amount(tracker.get_slot(PROMISE_AMOUNT))
    parts = _promised_parts(tracker, due)
    today, policy = today_in_beijing(), current_policy()
    if parts is not None:
        result = check_promise_in_parts(account, parts, today, policy)
    else:
        result = check_promise(account, amount, due, today, policy)
    if isinstance(result, Ineligible):
        needs = result.needs
        dispatcher.utter_message(
            response=f"utter_promise_{result.reason}",
            last_day=full_date(date.fromisoformat(needs["date"])) if "date" in needs else "",
            amount=money(Decimal(needs["amount"])) if "amount" in needs else "",
            parts=needs.get("parts", ""),
            overdue_total=money(account.overdue_total),
        )
        return [SlotSet(PROMISE_DATE, None), SlotSet(PROMISE_AMOUNT, None)]
    remaining = money(account.overdue_total - result.total_payable)
    if result.one_off:
        dispatcher.utter_message(
            response="utter_promise_terms",
            amount=money(result.total_payable),
            due=full_date(result.first_due),
            overdue_total=money(account.overdue_total),
            remaining=remaining,
        )
        dispatcher.utter_message(response="utter_terms_missed_one_off")
    else:
        dispatcher.utter_message(
            response="utter_promise_terms_parts",
            count=result.months,
            schedule=_schedule_lines(result.schedule),
            amount=money(result.total_payable),
            overdue_total=money(account.overdue_total),
            remaining=remaining,
        )
        dispatcher.utter_message(response="utter_terms_missed_promise_parts")
    dispatcher.utter_message(response="utter_confirm_terms")
    return [
        SlotSet(SELECTED, {"offer_id": uuid.uuid4().hex, "offer": result.to_dict()}),
        SlotSet(STAGE, "confirming"),
    ]


def _promised_parts(tracker: Tracker, due: date) -> list[PromisePart] | None:
    """The parts of the promise, read from the message that gave its date."""
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        parse = event.get("parse_data") or {}
        entities = parse.get("entities") or []
        if any(
            e.get("entity") == "date" and str(e.get("value")) == due.isoformat() for e in entities
        ):
            return promise_parts(event.get("text") or "", entities)
    return None


def _schedule_lines(schedule: Iterable[Installment]) -> str:
    """One line per payment: number, date, amount (the layout of every schedule shown)."""
    return "\n".join(
        f"{item.number}. {full_date(item.due_date)}  {money(item.amount)}" for item in schedule
    )


class ValidatePromiseForm(FormValidationAction):
    """Accepts the promised date only as a real calendar date from the NLU."""

    def name(self) -> str:
        return "validate_promise_form"

    async def validate_promise_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            date.fromisoformat(str(value))
        except ValueError:
            dispatcher.utter_message(response="utter_invalid_promise_date")
            return {PROMISE_DATE: None}
        amount = next(tracker.get_latest_entity_values("amount"), None)
        return {PROMISE_DATE: str(value), **({PROMISE_AMOUNT: amount} if amount else {})}


class ActionShowSchedule(Action):
    """The whole schedule of the debtor's latest agreement, for a verified debtor."""

    def name(self) -> str:
        return "action_show_schedule"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        from actions.verification import start_verification

        context = await _verified_account(tracker)
        if context is None:
            return await start_verification(dispatcher, tracker, "ask_repayment_plan")
        return await tell_schedule(dispatcher, context[0])


async def tell_schedule(dispatcher: CollectingDispatcher, debtor_id: int) -> list[EventType]:
    agreement = await latest_agreement(database(), debtor_id)
    if agreement is None:
        dispatcher.utter_message(response="utter_no_agreement")
        return []
    lines = _schedule_lines(agreement.schedule)
    dispatcher.utter_message(
        response="utter_schedule",
        reference=agreement.reference,
        months=agreement.months,
        total=money(agreement.total_payable),
        currency=agreement.currency,
        schedule=lines,
    )
    return []
