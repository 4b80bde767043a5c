"""What a verified debtor with an agreement or promise is told about it.

- Asked about the account or the plan: how much is paid, the next due date
  and amount, anything late (`tell_plan_state`).
- Asking for a plan while one is active on the account: no second plan, the
  state, and a negotiator to change it (`refuse_second_plan`).
- The first verified conversation after the sweep broke a plan: that it ended
  (`tell_broken_plan`), once.
- A new session of a web chat or REST conversation: the reminders queued for it
  (`show_reminders`), outside quiet hours.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk.executor import CollectingDispatcher

from actions.context import context
from actions.formatting import full_date, money
from bot.store.agreement_state import (
    AgreementState,
    active_agreements,
    active_on,
    broken_untold,
    record_told,
)
from bot.store.reminders import mark_sent, pending_in_conversation

REMINDER_RESPONSES = {
    "installment_due": "utter_reminder_installment_due",
    "promise_due": "utter_reminder_promise_due",
    "plan_ended": "utter_reminder_plan_ended",
}


def _late_lines(state: AgreementState) -> str:
    return "\n".join(
        f"{item.number}. {full_date(item.due_date)}  {money(item.owed)}" for item in state.late
    )


def utter_state(dispatcher: CollectingDispatcher, state: AgreementState) -> None:
    """Paid so far, what remains, the next payment and anything late."""
    dispatcher.utter_message(
        response="utter_agreement_state",
        reference=state.reference,
        total=money(state.total_payable),
        currency=state.currency,
        paid=money(state.paid),
        remaining=money(state.total_payable - state.paid),
    )
    upcoming = state.next_due(context().today())
    if upcoming is not None:
        dispatcher.utter_message(
            response="utter_agreement_next_due",
            due_date=full_date(upcoming.due_date),
            amount=money(upcoming.owed),
        )
    if state.late:
        dispatcher.utter_message(
            response="utter_agreement_late", count=len(state.late), late=_late_lines(state)
        )


async def tell_plan_state(dispatcher: CollectingDispatcher, debtor_id: int) -> bool:
    """The state of each of the debtor's active agreements; False if there is none."""
    states = await active_agreements(context().database, debtor_id)
    for state in states:
        utter_state(dispatcher, state)
    return bool(states)


async def refuse_second_plan(
    dispatcher: CollectingDispatcher, debtor_id: int, account_id: int | None
) -> bool:
    """True, having said so, when the account already has an active agreement or promise."""
    if account_id is None:
        return False
    state = active_on(await active_agreements(context().database, debtor_id), account_id)
    if state is None:
        return False
    utter_state(dispatcher, state)
    dispatcher.utter_message(response="utter_agreement_no_second_plan")
    return True


async def tell_broken_plan(
    dispatcher: CollectingDispatcher, conversation_id: str, debtor_id: int
) -> None:
    """Tell the debtor, once, that the sweep ended their plan."""
    state = await broken_untold(context().database, debtor_id)
    if state is None:
        return
    dispatcher.utter_message(
        response="utter_plan_ended_told",
        reference=state.reference,
        ended_on=full_date(state.ended_on) if state.ended_on else "",
        paid=money(state.paid),
    )
    await record_told(context().database, state.id, conversation_id, debtor_id)


async def show_reminders(dispatcher: CollectingDispatcher, conversation_id: str) -> None:
    """The reminders waiting for this conversation's visit; each is then marked sent."""
    ctx = context()
    now = ctx.now()
    for item in await pending_in_conversation(
        ctx.database, conversation_id, now, ctx.policy.lifecycle
    ):
        values: dict[str, Any] = {
            "reference": item.reference,
            "currency": item.currency,
            "due_date": full_date(item.due_on),
            "amount": "" if item.amount is None else money(item.amount),
        }
        dispatcher.utter_message(response=REMINDER_RESPONSES[item.kind], **values)
        await mark_sent(ctx.database, item.id, "visit", now)


def agreement_record(state: AgreementState) -> dict[str, Any]:
    """The agreement as a case summary quotes it: its state, installments and payments."""
    today = context().today()
    upcoming = state.next_due(today)
    return {
        **state.to_dict(),
        "next_due": None
        if upcoming is None
        else {"due_date": upcoming.due_date.isoformat(), "amount": str(upcoming.owed)},
        "late_installments": [item.number for item in state.late],
    }
