"""Agreements written straight into a test database: a schedule, a verified conversation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa

from bot.store.engine import Database
from bot.store.models import (
    Account,
    Agreement,
    AgreementInstallment,
    Debtor,
    HandoffCase,
    VerificationAttempt,
)


async def demo_account(db: Database, mobile: str) -> tuple[int, int]:
    """(debtor id, first account id) of the demo debtor with `mobile`."""
    async with db.session() as session:
        debtor_id = await session.scalar(sa.select(Debtor.id).where(Debtor.mobile == mobile))
        account_id = await session.scalar(
            sa.select(Account.id).where(Account.debtor_id == debtor_id).order_by(Account.id)
        )
    assert debtor_id is not None and account_id is not None
    return debtor_id, account_id


async def add_agreement(
    db: Database,
    debtor_id: int,
    account_id: int,
    dues: Sequence[tuple[date, str]],
    *,
    plan: str = "personalized_installment",
    status: str = "active",
    conversation_id: str = "rest:agreement",
    ended_on: date | None = None,
    paid: Sequence[str] = (),
) -> int:
    """An agreement with one installment per (due date, amount); `paid` amounts in order."""
    amounts = [Decimal(amount) for _, amount in dues]
    async with db.session() as session:
        row = Agreement(
            reference=f"XS-{uuid.uuid4().hex[:10]}",
            offer_id=uuid.uuid4().hex,
            conversation_id=conversation_id,
            debtor_id=debtor_id,
            account_id=account_id,
            plan=plan,
            currency="CNY",
            monthly_amount=max(amounts),
            months=len(dues),
            total_payable=sum(amounts, Decimal(0)),
            amount_waived=Decimal(0),
            first_due=dues[0][0],
            last_due=dues[-1][0],
            terms=json.dumps({}),
            status=status,
            ended_on=ended_on,
        )
        session.add(row)
        await session.flush()
        for number, ((due, _), value) in enumerate(zip(dues, amounts, strict=True), 1):
            done = Decimal(paid[number - 1]) if number <= len(paid) else Decimal(0)
            session.add(
                AgreementInstallment(
                    agreement_id=row.id,
                    number=number,
                    due_date=due,
                    amount=value,
                    paid_amount=done,
                    status="paid" if done == value else "due",
                )
            )
        await session.commit()
        return row.id


async def add_verification(
    db: Database, debtor_id: int, conversation_id: str, at: datetime | None = None
) -> None:
    """A successful identity check of `debtor_id` in `conversation_id`."""
    async with db.session() as session:
        session.add(
            VerificationAttempt(
                conversation_id=conversation_id,
                debtor_id=debtor_id,
                succeeded=True,
                created_at=at or datetime.now(timezone.utc),
            )
        )
        await session.commit()


async def add_case(
    db: Database,
    debtor_id: int,
    conversation_id: str,
    *,
    reason: str = "request_human",
    status: str = "waiting",
    created_at: datetime | None = None,
) -> None:
    """A handoff case of the debtor's conversation."""
    async with db.session() as session:
        session.add(
            HandoffCase(
                reference=f"RG-{uuid.uuid4().hex[:10]}",
                conversation_id=conversation_id,
                channel=conversation_id.partition(":")[0],
                debtor_id=debtor_id,
                reason=reason,
                priority=1 if reason == "distress" else 4,
                summary="{}",
                status=status,
                outcome="other" if status == "closed" else None,
                created_at=created_at or datetime.now(timezone.utc),
                closed_at=datetime.now(timezone.utc) if status == "closed" else None,
            )
        )
        await session.commit()
