"""Handing a conversation to a human negotiator, or a refusing debtor to collections.

Every handoff goes the same way (`hand_off`): what the assistant learned is
gathered into a summary, a case is opened in the negotiators' queue
(`bot.store.cases`), the debtor is told honestly who answers next and when, and the
conversation is paused, so that the assistant stays silent until staff close
the case and the console runs `action_handoff_resume`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    ConversationResumed,
    EventType,
    SessionStarted,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.access import verified_debtor
from actions.context import context
from actions.plan_state import agreement_record, show_reminders
from actions.slots import HANDOFF_REFERENCE, OFFERS, REQUESTED_SLOT, SELECTED, STAGE
from actions.staff_offer_answer import answer_staff_offer
from bot.domain.clock import BEIJING, weekday_name
from bot.domain.complaints import complaint_category
from bot.domain.redaction import redact_nested, redact_text, secrets_in
from bot.domain.staff_hours import next_staff_opening
from bot.store.accounts import AccountSummary, account_summaries
from bot.store.agreement_state import active_agreements
from bot.store.agreements import account_to_negotiate, latest_agreement, latest_proposal
from bot.store.cases import OpenedCase, open_case, open_case_of

#: Slots whose values describe the debtor's circumstances, copied into a case.
CIRCUMSTANCE_SLOTS = (
    "monthly_income",
    "monthly_expenses",
    "other_repayments",
    "hardship_reason",
    "hardship_detail",
    "hardship_months",
    "proposed_monthly",
    "available_funds",
)
#: How many of the debtor's latest messages a case summary quotes.
RECENT_MESSAGES = 12


def channel_of(tracker: Tracker) -> str:
    return tracker.get_latest_input_channel() or "unknown"


def _account_record(account: AccountSummary) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(account).items()}


def _recent_messages(tracker: Tracker) -> list[dict[str, Any]]:
    said = [
        {
            "text": event.get("text") or "",
            "intent": ((event.get("parse_data") or {}).get("intent") or {}).get("name"),
        }
        for event in tracker.applied_events()
        if event.get("event") == "user"
    ]
    return said[-RECENT_MESSAGES:]


async def case_summary(
    tracker: Tracker, debtor_id: int | None, detail: str | None = None
) -> tuple[dict[str, Any], AccountSummary | None]:
    """What a negotiator needs to take over without asking again, and the account."""
    summary: dict[str, Any] = {"verified": debtor_id is not None}
    account: AccountSummary | None = None
    if debtor_id is not None:
        accounts = await account_summaries(context().database, debtor_id)
        account = account_to_negotiate(accounts) or (accounts[0] if accounts else None)
        summary["accounts"] = [_account_record(a) for a in accounts]
        agreement = await latest_agreement(context().database, debtor_id)
        if agreement is not None:
            summary["agreement"] = {
                "reference": agreement.reference,
                "plan": agreement.plan,
                "monthly_amount": agreement.monthly_amount,
                "months": agreement.months,
            }
        active = await active_agreements(context().database, debtor_id)
        if active:
            # A debtor asking to change a plan: the negotiator sees where it stands.
            summary["active_agreements"] = [agreement_record(state) for state in active]
    circumstances = {
        name: tracker.get_slot(name)
        for name in CIRCUMSTANCE_SLOTS
        if tracker.get_slot(name) is not None
    }
    if circumstances:
        summary["circumstances"] = circumstances
    offers = tracker.get_slot(OFFERS)
    if offers:
        summary["offers_shown"] = offers
        summary["negotiation_stage"] = tracker.get_slot(STAGE)
        selected = tracker.get_slot(SELECTED)
        if selected:
            summary["offer_chosen"] = selected.get("offer")
    proposal = await latest_proposal(context().database, tracker.sender_id)
    if proposal is not None:
        summary["proposal"] = proposal
    # What the debtor typed to verify is not copied into the case (bot.domain.redaction).
    secrets = secrets_in(tracker.events)
    if detail:
        summary["debtor_words"] = redact_text(detail, secrets)
    summary["recent_messages"] = redact_nested(_recent_messages(tracker), secrets)
    return summary, account


def _opening_text(opening: datetime) -> str:
    local = opening.astimezone(BEIJING)
    return f"{local:%m月%d日}（{weekday_name(local)}）{local:%H:%M}"


async def queue_case(
    tracker: Tracker,
    reason: str,
    *,
    category: str | None = None,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    hold_overdue_accounts: bool = False,
) -> OpenedCase:
    """Open (or update) the conversation's case with everything learned so far."""
    debtor_id = await verified_debtor(tracker)
    summary, account = await case_summary(tracker, debtor_id, detail)
    summary.update(extra or {})
    # A debtor rarely says which account they dispute: all overdue ones wait.
    held = [
        record["account_id"]
        for record in summary.get("accounts", [])
        if hold_overdue_accounts and record["overdue_total"] > 0
    ]
    return await open_case(
        context().database,
        conversation_id=tracker.sender_id,
        channel=channel_of(tracker),
        reason=reason,
        summary=summary,
        escalation=context().policy.escalation,
        debtor_id=debtor_id,
        account_id=account.account_id if account else None,
        category=category,
        hold_accounts=held,
    )


async def hand_off(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    reason: str,
    *,
    category: str | None = None,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    hold_overdue_accounts: bool = False,
) -> tuple[list[EventType], str]:
    """Queue the conversation for a negotiator, tell the debtor, and pause the bot.

    Returns the events and the case reference; any reply specific to the
    reason is the caller's to send before calling this.
    """
    opened = await queue_case(
        tracker,
        reason,
        category=category,
        detail=detail,
        extra=extra,
        hold_overdue_accounts=hold_overdue_accounts,
    )
    hours = context().policy.escalation.staff_hours
    opening = next_staff_opening(context().now(), hours)
    if opening is None:
        dispatcher.utter_message(response="utter_handoff_waiting", reference=opened.reference)
    else:
        dispatcher.utter_message(
            response="utter_handoff_after_hours",
            reference=opened.reference,
            opening=_opening_text(opening),
        )
    events: list[EventType] = [
        SlotSet(HANDOFF_REFERENCE, opened.reference),
        SlotSet(REQUESTED_SLOT, None),
        ConversationPaused(),
    ]
    if tracker.active_loop_name:
        events.insert(0, ActiveLoop(None))
    return events, opened.reference


class ActionHandOffOnRequest(Action):
    """The debtor asked for a person."""

    def name(self) -> str:
        return "action_hand_off_on_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events, _ = await hand_off(dispatcher, tracker, "request_human")
        return events


def support_in_distress(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """Care and the crisis hotline; with a life in danger now, police and ambulance first."""
    escalation = context().policy.escalation
    text = tracker.latest_message.get("text") or ""
    if context().critical_messages.is_imminent_danger(text):
        dispatcher.utter_message(
            response="utter_imminent_danger",
            police_hotline=escalation.police_hotline,
            ambulance_hotline=escalation.ambulance_hotline,
            crisis_hotline=escalation.crisis_hotline,
        )
    else:
        dispatcher.utter_message(
            response="utter_express_distress", crisis_hotline=escalation.crisis_hotline
        )


class ActionSupportDistress(Action):
    """Care and the crisis hotline first, then a person, before anything about money."""

    def name(self) -> str:
        return "action_support_distress"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        support_in_distress(dispatcher, tracker)
        events, _ = await hand_off(
            dispatcher, tracker, "distress", detail=tracker.latest_message.get("text")
        )
        return events


class ActionWatchHeldConversation(Action):
    """Distress while a person holds the conversation: care at once, and the case goes first.

    While a conversation is paused Rasa predicts nothing, but it still runs
    the global slot-validation action (`action_validate_slot_mappings`) after
    every message; this is that action. Only slot and message events count
    there. Nothing else in the project validates slots globally.
    """

    def name(self) -> str:
        return "action_validate_slot_mappings"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if tracker.is_paused() and intent in ("affirm", "deny"):
            # The answer to a negotiator's offer (actions.staff_offer_answer).
            return await answer_staff_offer(dispatcher, tracker, intent) or []
        if not tracker.is_paused() or intent != "express_distress":
            return []
        support_in_distress(dispatcher, tracker)
        opened = await queue_case(tracker, "distress", detail=tracker.latest_message.get("text"))
        dispatcher.utter_message(response="utter_distress_while_held")
        return [SlotSet(HANDOFF_REFERENCE, opened.reference)]


class ActionLogDispute(Action):
    """'Not my debt' or 'wrong amount': a dispute, with collection on hold once verified."""

    def name(self) -> str:
        return "action_log_dispute"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        verified = await verified_debtor(tracker) is not None
        dispatcher.utter_message(
            response="utter_dispute_recorded" if verified else "utter_dispute_recorded_unverified"
        )
        events, _ = await hand_off(
            dispatcher,
            tracker,
            "dispute",
            detail=tracker.latest_message.get("text"),
            hold_overdue_accounts=True,
        )
        return events


class ActionLogComplaint(Action):
    """A complaint, recorded with its category; the regulator's hotline is given."""

    def name(self) -> str:
        return "action_log_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        escalation = context().policy.escalation
        text = tracker.latest_message.get("text") or ""
        dispatcher.utter_message(
            response="utter_complaint_recorded",
            regulator_hotline=escalation.regulator_hotline,
        )
        events, _ = await hand_off(
            dispatcher,
            tracker,
            "complaint",
            category=complaint_category(text, escalation),
            detail=text,
        )
        return events


def fallbacks_in_a_row(tracker: Tracker) -> int:
    """How many of the debtor's latest messages in a row were not understood."""
    count = 0
    for event in reversed(tracker.applied_events()):
        if event.get("event") == "session_started":
            break
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        count += 1
    return count


class ActionHandleFallback(Action):
    """Ask the debtor to rephrase; after too many misunderstandings in a row, a person."""

    def name(self) -> str:
        return "action_handle_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if fallbacks_in_a_row(tracker) < context().policy.escalation.fallbacks_in_a_row:
            dispatcher.utter_message(response="utter_default")
            return []
        dispatcher.utter_message(response="utter_fallback_handoff")
        events, _ = await hand_off(dispatcher, tracker, "repeated_fallback")
        return events


class ActionHandoffResume(Action):
    """Run by the staff console when a case is closed: the assistant answers again.

    It does nothing while the conversation still has an open case, so that
    nothing but closing the case resumes the bot. The console records the
    resumption once Rasa has run this action and delivered its reply.
    """

    def name(self) -> str:
        return "action_handoff_resume"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if await open_case_of(context().database, tracker.sender_id) is not None:
            return []
        if not tracker.is_paused():
            # Already answering (an earlier resume got through): say nothing twice.
            return []
        dispatcher.utter_message(response="utter_handoff_resumed")
        return [
            ConversationResumed(),
            SlotSet(HANDOFF_REFERENCE, None),
            SlotSet(STAGE, None),
            SlotSet(OFFERS, None),
            SlotSet(SELECTED, None),
            # Run through Rasa's `execute` endpoint, nothing listens after it: without
            # this the debtor's next message follows no `action_listen`, no rule
            # matches it and it gets the fallback.
            ActionExecuted("action_listen"),
        ]


class ActionSessionStart(Action):
    """A new session; a conversation waiting for or held by staff stays paused.

    Rasa's own session start would un-pause a conversation whose case is still
    open once the session expires (for example overnight, outside staff hours).
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        case = await open_case_of(context().database, tracker.sender_id)
        if case is not None:
            events += [SlotSet(HANDOFF_REFERENCE, case.reference), ConversationPaused()]
        else:
            # The web chat or REST reminders queued for this conversation: shown at the visit.
            await show_reminders(dispatcher, tracker.sender_id)
        events.append(ActionExecuted("action_listen"))
        return events
