"""Referring a debtor who will not pay to the collections department: honestly,
once the consequences were explained, never with a threat."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    EventType,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.access import verified_debtor
from actions.context import context
from actions.escalation import case_summary, channel_of, hand_off
from actions.slots import STAGE
from bot.domain.referrals import should_refer_when_negotiator_declined
from bot.store.accounts import account_summaries
from bot.store.agreements import account_to_negotiate
from bot.store.referrals import refer_to_collections


def refusals_explained(tracker: Tracker) -> int:
    """How often this session already answered a refusal to pay."""
    count = 0
    for event in tracker.applied_events():
        if event.get("event") == "session_started":
            count = 0
        elif event.get("event") == "action" and event.get("name") == "action_handle_refusal":
            count += 1
    # The action being run is not in the events yet.
    return count


async def refer(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int, reason: str
) -> list[EventType]:
    """Queue the account for collections and tell the debtor plainly, without threat."""
    summary, account = await case_summary(tracker, debtor_id)
    reference = await refer_to_collections(
        context().database,
        conversation_id=tracker.sender_id,
        channel=channel_of(tracker),
        debtor_id=debtor_id,
        account_id=account.account_id if account else None,
        reason=reason,
        summary=summary,
    )
    dispatcher.utter_message(response="utter_collections_referral", reference=reference)
    return [SlotSet(STAGE, None)]


class ActionHandleRefusal(Action):
    """A refusal to pay: the options are explained once; a repeated refusal is referred."""

    def name(self) -> str:
        return "action_handle_refusal"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        escalation = context().policy.escalation
        if refusals_explained(tracker) < escalation.refusals_before_referral:
            dispatcher.utter_message(response="utter_refuse_payment")
            return []
        debtor_id = await verified_debtor(tracker)
        if debtor_id is None:
            # Nobody can be referred before we know who they are.
            dispatcher.utter_message(response="utter_refuse_payment_unverified")
            return []
        return await refer(dispatcher, tracker, debtor_id, "refused_payment")


class ActionOffersDeclined(Action):
    """Every offer declined: offer a negotiator (or a new figure)."""

    def name(self) -> str:
        return "action_offers_declined"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_offers_declined")
        return [SlotSet(STAGE, "declined")]


class ActionHandOffAfterDecline(Action):
    """The debtor declined every offer and still wants to negotiate: a person."""

    def name(self) -> str:
        return "action_hand_off_after_decline"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events, _ = await hand_off(dispatcher, tracker, "offers_declined")
        return [SlotSet(STAGE, None), *events]


class ActionDeclineNegotiator(Action):
    """The debtor declined a negotiator too: marked accounts go to collections."""

    def name(self) -> str:
        return "action_decline_negotiator"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        escalation = context().policy.escalation
        debtor_id = await verified_debtor(tracker)
        if debtor_id is not None:
            account = account_to_negotiate(await account_summaries(context().database, debtor_id))
            if account is not None and should_refer_when_negotiator_declined(
                account.days_past_due, account.broken_plans, escalation
            ):
                return await refer(dispatcher, tracker, debtor_id, "declined_negotiator")
        dispatcher.utter_message(response="utter_no_handoff")
        return [SlotSet(STAGE, None)]
