"""The terms of the chosen offer, confirmed or declined. Nothing is written to the
database before the debtor explicitly confirms, and the confirmed terms are
computed again from the current balances first.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.access import verified_account
from actions.context import context
from actions.formatting import full_date, money
from actions.offers import circumstance_slots, offer_buttons, show_terms
from actions.plan_state import refuse_second_plan
from actions.slots import OFFERS, PROMISE_AMOUNT, PROMISE_DATE, SELECTED, STAGE
from bot.domain.circumstances import (
    circumstances,
)
from bot.domain.negotiation import (
    AccountPosition,
    Offer,
    assess,
    check_promise_in_parts,
)
from bot.store.agreements import (
    ActiveAgreementExists,
    position,
    record_agreement,
)


def _recomputed(tracker: Tracker, account: AccountPosition, shown: Offer) -> Offer | None:
    """The same plan computed again from today's figures, or None if no longer offered."""
    policy, today = context().policy, context().today()
    if shown.plan == "promise_to_pay" and tracker.get_slot(PROMISE_DATE):
        parts = [(item.amount, item.due_date) for item in shown.schedule]
        result = check_promise_in_parts(account, parts, today, policy)
        return result if isinstance(result, Offer) else None
    found = circumstances(circumstance_slots(tracker))
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
    for event in reversed(tracker.applied_events()):
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
        verified = await verified_account(tracker)
        if not selected or verified is None or verified[1] is None:
            dispatcher.utter_message(response="utter_choose_plan_needs_offer")
            return [SlotSet(SELECTED, None), SlotSet(STAGE, None)]
        debtor_id, summary = verified[0], verified[1]
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
        try:
            recorded = await record_agreement(
                context().database,
                offer_id=str(selected["offer_id"]),
                conversation_id=tracker.sender_id,
                debtor_id=debtor_id,
                offer=current,
                account=account,
                circumstances=circumstances(circumstance_slots(tracker)),
                today=context().today(),
            )
        except ActiveAgreementExists:
            # Another conversation agreed a plan for this account meanwhile.
            await refuse_second_plan(dispatcher, debtor_id, account.account_id)
            return [SlotSet(SELECTED, None), SlotSet(STAGE, None), SlotSet(OFFERS, None)]
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
            dispatcher.utter_message(response=offer_buttons(len(offers)))
            return [SlotSet(SELECTED, None), SlotSet(STAGE, "offered")]
        dispatcher.utter_message(response="utter_promise_declined")
        return [
            SlotSet(SELECTED, None),
            SlotSet(STAGE, None),
            SlotSet(PROMISE_DATE, None),
            SlotSet(PROMISE_AMOUNT, None),
        ]
