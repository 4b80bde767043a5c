"""The offers: shown as numbered choices, chosen, countered, or a proposal for a negotiator.

Thin actions over `bot.domain.negotiation` and `bot.store.agreements`: they read
slots, call the engine, and send the responses of domain.yml.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.access import verified_account
from actions.context import context
from actions.escalation import hand_off
from actions.formatting import full_date, money, schedule_lines
from actions.plan_state import refuse_second_plan
from actions.slots import FORM, OFFERS, SELECTED, STAGE
from actions.verification import start_verification
from bot.domain.circumstances import (
    FIELDS,
    PROPOSED_MONTHLY,
    UNKNOWN,
    circumstances,
    extract,
    implausible,
)
from bot.domain.negotiation import (
    AccountPosition,
    Assessment,
    Circumstances,
    Ineligible,
    Offer,
    assess,
    counter_offer,
    own_limit_applies,
)
from bot.domain.policy import Policy
from bot.store import audit
from bot.store.accounts import AccountSummary
from bot.store.agreements import (
    position,
    record_proposal,
)

#: Words that pick a plan by kind ("分期那个"), most specific first.
PLAN_WORDS = (
    ("lump_sum_settlement", ("一次性", "结清", "打折")),
    ("loan_extension", ("延期", "展期", "宽限", "缓")),
    ("fee_waiver", ("减免", "罚息", "违约金")),
    ("promise_to_pay", ("承诺", "自己还", "月底")),
    ("personalized_installment", ("分期", "停息", "挂账", "60期", "每月")),
)


def circumstance_slots(tracker: Tracker) -> dict[str, Any]:
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


def offer_buttons(count: int) -> str:
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
        beyond = offer.total_payable - found.available_funds
        if offer.one_off and found.available_funds > 0 and beyond > 0:
            # A one-off sum above the funds named: say what it would take.
            dispatcher.utter_message(
                response="utter_offer_beyond_funds",
                funds=money(found.available_funds),
                gap=money(beyond),
                first_due=full_date(offer.first_due),
            )
    dispatcher.utter_message(response=offer_buttons(len(assessment.offers)))
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
    policy = context().policy
    if assessment.offers:
        await audit.record(
            context().database,
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
        context().database,
        conversation_id=tracker.sender_id,
        debtor_id=debtor_id,
        account=assessment.account,
        circumstances=found,
        proposal=assessment.proposal,
        ineligible=_ineligible_record(assessment.ineligible),
        today=context().today(),
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


class ActionOfferPlans(Action):
    """Once the circumstances are known: the offers, or a proposal for a negotiator."""

    def name(self) -> str:
        return "action_offer_plans"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        verified = await verified_account(tracker)
        if verified is None:
            return await start_verification(dispatcher, tracker, "request_negotiation")
        debtor_id, summary = verified
        found = circumstances(circumstance_slots(tracker))
        if summary is None:
            dispatcher.utter_message(response="utter_no_accounts")
            return []
        if await refuse_second_plan(dispatcher, debtor_id, summary.account_id):
            return [SlotSet(OFFERS, None), SlotSet(SELECTED, None), SlotSet(STAGE, None)]
        if found is None:
            return [FollowupAction(FORM)]
        assessment = assess(position(summary), found, context().today(), context().policy)
        return await offer_or_propose(dispatcher, tracker, debtor_id, summary, assessment, found)


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
    send_terms(dispatcher, offer, account)
    return [
        SlotSet(SELECTED, {"offer_id": uuid.uuid4().hex, "offer": offer.to_dict()}),
        SlotSet(STAGE, "confirming"),
    ]


def send_terms(dispatcher: CollectingDispatcher, offer: Offer, account: AccountPosition) -> None:
    """The terms of `offer` and the confirm and decline buttons (a negotiator's offers too)."""
    values = {**account_values(account), **offer_values(offer)}
    in_parts = offer.plan == "promise_to_pay" and not offer.one_off
    if in_parts:
        values["schedule"] = schedule_lines(offer.schedule)
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
        verified = await verified_account(tracker)
        summary = verified[1] if verified else None
        if summary is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return [SlotSet(OFFERS, None), SlotSet(STAGE, None)]
        chosen = choose(offers, _plan_index(tracker), tracker.latest_message.get("text") or "")
        if chosen is None:
            dispatcher.utter_message(response="utter_choose_plan_unclear", count=len(offers))
            dispatcher.utter_message(response=offer_buttons(len(offers)))
            return []
        return show_terms(dispatcher, Offer.from_dict(chosen), position(summary))


class ActionReviseOffers(Action):
    """A counter-proposal or a corrected figure after the offers: compute them again."""

    def name(self) -> str:
        return "action_revise_offers"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        verified = await verified_account(tracker)
        if verified is None or verified[1] is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return []
        debtor_id, summary = verified[0], verified[1]
        message = tracker.latest_message
        found = extract(message.get("text") or "", message.get("entities") or [], None)
        if not found:
            dispatcher.utter_message(response="utter_revise_unclear")
            return []
        before = circumstance_slots(tracker)
        if all(str(before.get(name)) == str(value) for name, value in found.items()):
            # The same figures again: nothing to correct, and the plans stand.
            dispatcher.utter_message(response="utter_figures_unchanged")
            return []
        slots = {**before, **found}
        policy = context().policy
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
            assessment = assess(account, current, context().today(), policy)
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
    today = context().today()
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
