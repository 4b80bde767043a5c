"""The debtor's answer to a negotiator's offer, while the negotiator holds the conversation.

While a conversation is paused Rasa predicts nothing, but it runs
`action_validate_slot_mappings` after every message (`actions.escalation`),
which calls `answer_staff_offer`. Only an explicit confirmation that answers
the offer (the debtor's next message after it) records anything, and only if
the terms computed again on today's balances are the terms shown; a decline, or
an answer after the offer expired, records nothing. The negotiator sees the
outcome in the console.
"""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.access import verified_debtor
from actions.context import context
from actions.formatting import full_date, money
from bot.domain.negotiation import AccountPosition
from bot.domain.staff_offers import is_expired, recompute
from bot.store import staff_offers as store
from bot.store.accounts import account_summaries
from bot.store.agreements import position

SEND_ACTION = "action_send_staff_offer"


async def current_account(debtor_id: int, account_id: int) -> AccountPosition | None:
    """The account's position today, from the database."""
    for summary in await account_summaries(context().database, debtor_id):
        if summary.account_id == account_id:
            return position(summary)
    return None


def answers_the_offer(tracker: Tracker) -> bool:
    """Whether the latest message is the first one after the offer was shown."""
    seen_user = False
    for event in reversed(tracker.applied_events()):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return False
            seen_user = True
        elif kind == "action" and event.get("name") == SEND_ACTION:
            return seen_user
    return False


async def answer_staff_offer(
    dispatcher: CollectingDispatcher, tracker: Tracker, intent: str | None
) -> list[EventType] | None:
    """Handle a confirmation or a decline of the conversation's offer; None if none is due."""
    if intent not in ("affirm", "deny"):
        return None
    db = context().database
    view = await store.sent_offer_of(db, tracker.sender_id)
    if view is None or not answers_the_offer(tracker):
        return None
    if view.sent_at is not None and is_expired(view.sent_at, context().now(), context().policy):
        await store.expire_offers(db, context().now())
        dispatcher.utter_message(response="utter_staff_offer_expired")
        return []
    if intent == "deny":
        await store.decline_offer(db, view.id)
        dispatcher.utter_message(response="utter_staff_offer_declined")
        return []
    account = None
    if await verified_debtor(tracker) == view.debtor_id:
        account = await current_account(view.debtor_id, view.account_id)
    if account is None:
        dispatcher.utter_message(response="utter_staff_offer_unavailable")
        return []
    today = context().today()
    current = recompute(view.offer_terms, account, view.circumstances, today, context().policy)
    if current is None or current.to_dict() != view.details["offer"]:
        await store.mark_changed(db, view.id)
        dispatcher.utter_message(response="utter_staff_offer_changed")
        return []
    recorded = await store.accept_offer(
        db, view, offer=current, account=account, circumstances=view.circumstances, today=today
    )
    dispatcher.utter_message(
        response="utter_agreement_recorded",
        reference=recorded.reference,
        first_due=full_date(recorded.first_due),
        first_amount=money(recorded.schedule[0].amount),
        months=recorded.months,
    )
    dispatcher.utter_message(response="utter_collections_paused")
    return []
