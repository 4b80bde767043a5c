"""What a verified debtor may be told about their accounts, with an audit entry."""

from __future__ import annotations

from decimal import Decimal

from rasa_sdk.executor import CollectingDispatcher

from actions.context import context
from actions.formatting import money
from actions.plan_state import tell_plan_state
from bot.store.accounts import AccountSummary, account_summaries, record_disclosure
from bot.store.identity import is_verified


def status_message(account: AccountSummary) -> dict[str, object]:
    """The response and its values for one account."""
    values: dict[str, object] = {
        "response": f"utter_account_status_{account.product}",
        "days_past_due": account.days_past_due,
        "overdue_total": money(account.overdue_total),
        "currency": account.currency,
        "principal": money(account.overdue_principal),
        "interest": money(account.interest),
        "penalty_fees": money(account.penalty_fees),
    }
    if account.product != "credit_card":
        values.update(
            missed_installments=account.missed_installments,
            installment_amount=money(account.installment_amount or Decimal(0)),
            outstanding_principal=money(account.outstanding_principal),
        )
    return values


async def tell_account_status(
    dispatcher: CollectingDispatcher, conversation_id: str, debtor_id: int
) -> bool:
    """Send a verified debtor the figures of every overdue account, and audit it.

    Returns False, saying nothing, when the database holds no recent successful
    verification of this conversation as this debtor (slots alone are not trusted).
    """
    db = context().database
    if not await is_verified(db, conversation_id, debtor_id):
        return False
    accounts = await account_summaries(db, debtor_id)
    if not accounts:
        dispatcher.utter_message(response="utter_no_accounts")
        return True
    for account in accounts:
        dispatcher.utter_message(**status_message(account))
    if not await tell_plan_state(dispatcher, debtor_id):
        dispatcher.utter_message(response="utter_account_next_steps")
    await record_disclosure(db, conversation_id, debtor_id, "account_status")
    return True
