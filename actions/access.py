"""Which debtor, and which account, this conversation may see.

Slots alone are never trusted: the database must hold a recent successful
verification of this conversation as this debtor.
"""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.context import context
from actions.slots import DEBTOR_ID, VERIFIED
from bot.store.accounts import AccountSummary, account_summaries
from bot.store.agreements import account_to_negotiate
from bot.store.identity import is_verified


async def verified_debtor(tracker: Tracker, debtor_id: int | None = None) -> int | None:
    """The debtor this conversation verified as, confirmed by the database.

    `debtor_id` is given by the action that has just verified the debtor, before
    its slot events are applied; the database must confirm it either way.
    """
    if debtor_id is None:
        slot = tracker.get_slot(DEBTOR_ID)
        if not tracker.get_slot(VERIFIED) or slot is None:
            return None
        debtor_id = int(slot)
    if not await is_verified(context().database, tracker.sender_id, int(debtor_id)):
        return None
    return int(debtor_id)


async def verified_account(
    tracker: Tracker, debtor_id: int | None = None
) -> tuple[int, AccountSummary | None] | None:
    """The verified debtor and the account to negotiate, or None if not verified."""
    debtor = await verified_debtor(tracker, debtor_id)
    if debtor is None:
        return None
    accounts = await account_summaries(context().database, debtor)
    return debtor, account_to_negotiate(accounts)
