"""What a verified debtor owes, and the record of having told them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from bot.store import audit
from bot.store.engine import Database
from bot.store.models import Account

#: Who the audit log names for disclosures.
DISCLOSURE_ACTION = "disclosure"
MAX_DISCLOSURE_CHARS = 200


@dataclass(frozen=True)
class AccountSummary:
    """One account of a debtor; every amount is a `Decimal` in `currency`."""

    account_id: int
    product: str
    currency: str
    outstanding_principal: Decimal
    overdue_principal: Decimal
    interest: Decimal
    penalty_fees: Decimal
    #: overdue principal + interest + penalty and fees.
    overdue_total: Decimal
    days_past_due: int
    missed_installments: int
    installment_amount: Decimal | None
    status: str
    collections_hold: bool
    broken_plans: int


def _summary(account: Account) -> AccountSummary:
    return AccountSummary(
        account_id=account.id,
        product=account.product,
        currency=account.currency,
        outstanding_principal=account.outstanding_principal,
        overdue_principal=account.overdue_principal,
        interest=account.interest,
        penalty_fees=account.penalty_fees,
        overdue_total=account.overdue_principal + account.interest + account.penalty_fees,
        days_past_due=account.days_past_due,
        missed_installments=account.missed_installments,
        installment_amount=account.installment_amount,
        status=account.status,
        collections_hold=account.collections_hold,
        broken_plans=account.broken_plans,
    )


async def account_summaries(db: Database, debtor_id: int) -> list[AccountSummary]:
    """The debtor's accounts in the order they were opened; empty if there are none."""
    query = sa.select(Account).where(Account.debtor_id == debtor_id).order_by(Account.id)
    async with db.session() as session:
        accounts = (await session.execute(query)).scalars().all()
    return [_summary(account) for account in accounts]


async def record_disclosure(db: Database, conversation_id: str, debtor_id: int, what: str) -> None:
    """Audit that `what` (e.g. "account_summary") was shown to the debtor in a conversation."""
    if not isinstance(what, str) or not 0 < len(what) <= MAX_DISCLOSURE_CHARS:
        raise ValueError(f"what must be 1-{MAX_DISCLOSURE_CHARS} characters")
    await audit.record(
        db, audit.BOT_ACTOR, DISCLOSURE_ACTION, conversation_id, debtor_id, {"what": what}
    )
