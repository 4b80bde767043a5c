"""A promise to pay by a date, in one payment or a few: checked against the policy
and recorded on explicit confirmation.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.access import verified_account
from actions.context import context
from actions.formatting import full_date, money, schedule_lines
from actions.plan_state import refuse_second_plan
from actions.slots import PROMISE_AMOUNT, PROMISE_DATE, SELECTED, STAGE
from actions.verification import start_verification
from bot.domain.circumstances import (
    MAX_AMOUNT,
)
from bot.domain.negotiation import (
    Ineligible,
    PromisePart,
    check_promise,
    check_promise_in_parts,
)
from bot.domain.promises import promise_parts
from bot.store.agreements import (
    position,
)


async def start_promise(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int
) -> list[EventType]:
    """After verification: check the promised date and amount, or ask for the date."""
    verified = await verified_account(tracker, debtor_id)
    if verified is not None and verified[1] is not None:
        if await refuse_second_plan(dispatcher, verified[0], verified[1].account_id):
            return [SlotSet(PROMISE_DATE, None), SlotSet(PROMISE_AMOUNT, None)]
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
    verified = await verified_account(tracker, debtor_id)
    if verified is None:
        return await start_verification(dispatcher, tracker, "promise_to_pay")
    debtor, summary = verified
    if summary is None:
        dispatcher.utter_message(response="utter_no_accounts")
        return []
    if await refuse_second_plan(dispatcher, debtor, summary.account_id):
        return [SlotSet(PROMISE_DATE, None), SlotSet(PROMISE_AMOUNT, None)]
    account = position(summary)
    try:
        due = date.fromisoformat(str(tracker.get_slot(PROMISE_DATE)))
    except ValueError:
        return [SlotSet(PROMISE_DATE, None), FollowupAction("promise_form")]
    amount = _promise_amount(tracker.get_slot(PROMISE_AMOUNT))
    parts = _promised_parts(tracker, due)
    today, policy = context().today(), context().policy
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
            schedule=schedule_lines(result.schedule),
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
    for event in reversed(tracker.applied_events()):
        if event.get("event") != "user":
            continue
        parse = event.get("parse_data") or {}
        entities = parse.get("entities") or []
        if any(
            e.get("entity") == "date" and str(e.get("value")) == due.isoformat() for e in entities
        ):
            return promise_parts(event.get("text") or "", entities)
    return None


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
