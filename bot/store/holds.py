"""Collection holds a dispute puts on accounts, and their lifting once staff resolve it.

A disputed account is not collected until staff close the dispute's case. The
case lists the accounts it holds in its summary (`HELD_ACCOUNTS`), so that a
hold is lifted only where nothing else holds the account: an active agreement,
or another dispute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.models import Account, Agreement, HandoffCase

#: The summary key listing the accounts a dispute put on hold.
HELD_ACCOUNTS = "held_accounts"
ACCOUNTS = Account.__table__
CASES = HandoffCase.__table__


def held_accounts(summary: Mapping[str, Any]) -> list[int]:
    """The accounts a case summary says its dispute holds."""
    return list(summary.get(HELD_ACCOUNTS) or [])


async def put_on_hold(session: AsyncSession, account_ids: Sequence[int]) -> None:
    """Stop collecting `account_ids` (in `session`'s transaction)."""
    await session.execute(
        sa.update(Account)
        .where(ACCOUNTS.c.id.in_(list(account_ids)))
        .values(collections_hold=True)
        .execution_options(synchronize_session=False)
    )


async def disputed_accounts(
    session: AsyncSession, *, except_case_id: int | None = None
) -> set[int]:
    """The accounts a dispute holds (other than `except_case_id`'s).

    A dispute holds them while its case is open, or closed as `dispute_logged`
    (staff are investigating).
    """
    disputes = sa.select(HandoffCase.summary).where(
        CASES.c.holds_collection.is_(True),
        sa.or_(HandoffCase.status != "closed", HandoffCase.outcome == "dispute_logged"),
    )
    if except_case_id is not None:
        disputes = disputes.where(HandoffCase.id != except_case_id)
    summaries = (await session.execute(disputes)).scalars()
    return {account for summary in summaries for account in held_accounts(json.loads(summary))}


async def still_held(
    session: AsyncSession, account_id: int, *, except_case_id: int | None = None
) -> bool:
    """Whether an active agreement or a dispute (not `except_case_id`'s) holds the account."""
    agreed = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(Agreement)
            .where(Agreement.account_id == account_id, Agreement.status == "active")
        )
    ).scalar_one()
    if agreed:
        return True
    return account_id in await disputed_accounts(session, except_case_id=except_case_id)


async def lift_holds(session: AsyncSession, case: HandoffCase, held: list[int]) -> list[int]:
    """Lift the dispute holds `case` put on `held`, but not where something else holds.

    An active agreement holds its account, and so does another dispute: one
    still open, or one closed as `dispute_logged` (staff are investigating).
    Returns the accounts whose hold was lifted.
    """
    lifted = []
    for account_id in held:
        if await still_held(session, account_id, except_case_id=case.id):
            continue
        await session.execute(
            sa.update(Account).where(Account.id == account_id).values(collections_hold=False)
        )
        lifted.append(account_id)
    return lifted
