"""The circumstances form: income, expenses, other debts, the hardship and what
the debtor can pay, read from free text, with the repairs a real conversation needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.access import verified_account
from actions.context import context
from actions.escalation import hand_off
from actions.formatting import money
from actions.offers import circumstance_slots
from actions.plan_state import refuse_second_plan
from actions.slots import FORM, OFFERS, REQUESTED_SLOT, SELECTED, STAGE
from bot.domain.circumstances import (
    FIELDS,
    HARDSHIP_DETAIL,
    HARDSHIP_MONTHS,
    HARDSHIP_REASON,
    INCOME,
    LEFT_OPEN,
    already_said,
    cannot_say,
    extract,
    extract_with_ranges,
    hardship_from,
    hardship_horizon,
    implausible,
    left_open,
    resumes,
    still_needed,
)
from bot.domain.negotiation import (
    AccountPosition,
    Proposal,
    beyond_authority,
)
from bot.store.agreements import (
    position,
    record_proposal,
)

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


def _negotiation_messages(tracker: Tracker) -> list[dict[str, Any]]:
    """The debtor's messages since they asked to negotiate, outside identity verification."""
    messages: list[dict[str, Any]] = []
    loop: str | None = None
    for event in tracker.applied_events():
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
        found.update(extract(text, entities, asked, context().today()))
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
        asked = tracker.get_slot(REQUESTED_SLOT)
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
        known = {**circumstance_slots(tracker), **found}
        events: list[EventType] = []
        policy = context().policy
        for name, value in found.items():
            problem = implausible(name, value, known, policy) if name in FIELDS else None
            if problem:
                dispatcher.utter_message(response=f"utter_implausible_{problem}")
                value = None
                if problem == "expenses_too_large":
                    # Either figure may be the wrong one: both are asked again, income
                    # first, so a mistyped income ("1" for 1万) cannot block the form.
                    events.append(SlotSet(INCOME, None))
            elif name == HARDSHIP_MONTHS and _from_horizon(tracker, asked, starting):
                # "过完年": say how many months that was taken as.
                dispatcher.utter_message(
                    response="utter_horizon_taken_hardship_months", value=value
                )
            elif name in _ranged(tracker, asked, starting):
                # "四五千": say which figure was taken, so the debtor can correct it.
                shown = value if name == HARDSHIP_MONTHS else money(Decimal(value))
                dispatcher.utter_message(response=f"utter_range_taken_{name}", value=shown)
            events.append(SlotSet(name, value))
        return events


def _from_horizon(tracker: Tracker, asked: str | None, starting: bool) -> bool:
    """Whether the latest message gave the hardship's length as when it ends ("年底")."""
    if starting:
        return False
    latest = tracker.latest_message
    text, entities = latest.get("text") or "", latest.get("entities") or []
    return hardship_horizon(text, entities, asked, context().today()) is not None


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
    for event in reversed(tracker.applied_events()):
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
    known = {**circumstance_slots(tracker), **found}
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
    verified = await verified_account(tracker, debtor_id)
    if verified is not None and verified[1] is not None:
        if await refuse_second_plan(dispatcher, verified[0], verified[1].account_id):
            return []
        account = position(verified[1])
        reason = beyond_authority(account, context().policy)
        if reason is not None:
            return await _refer_before_the_form(dispatcher, tracker, verified[0], account, reason)
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
        context().database,
        conversation_id=tracker.sender_id,
        debtor_id=debtor_id,
        account=account,
        circumstances=said,
        proposal=Proposal(reason, None),
        ineligible=[],
        today=context().today(),
    )
    dispatcher.utter_message(response=f"utter_proposal_{reason}")
    dispatcher.utter_message(response="utter_proposal_prepared_before_form", reference=reference)
    # The case is opened for the debtor just verified, with what they said.
    verified = tracker.copy()
    verified.slots.update({"verified": True, "debtor_id": debtor_id, **said})
    handoff, _ = await hand_off(dispatcher, verified, "beyond_authority")
    slots = [SlotSet(name, value) for name, value in said.items()]
    return [*slots, SlotSet(OFFERS, None), SlotSet(SELECTED, None), SlotSet(STAGE, None), *handoff]
