"""Agreements, payment files and table snapshots for the payment and sweep tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from bot.domain.clock import BEIJING
from bot.store.engine import Database
from bot.store.models import Account, Agreement, AgreementInstallment, Debtor
from bot.store.payment_models import Payment, PaymentAllocation, SweepRun

#: The demo accounts' numbers (bot/store/seed.py).
ACCOUNT_NOS = {
    "张伟": "6222021001000001",
    "李娜": "6222021001000002",
    "王芳": "6222021001000003",
    "刘洋": "6222021001000004",
    "陈静": "6222021001000005",
}
HEADER = "account_no,paid_on,amount,reference\n"


async def account_of(db: Database, name: str) -> Account:
    """The demo debtor `name`'s account."""
    async with db.session() as session:
        return (
            await session.execute(
                sa.select(Account).join(Debtor).where(Debtor.__table__.c.full_name == name)
            )
        ).scalar_one()


async def add_agreement(
    db: Database,
    name: str,
    schedule: Sequence[tuple[date, str]],
    *,
    plan: str = "personalized_installment",
    agreed_on: date,
    hold: bool = True,
) -> int:
    """An active agreement of `name`'s account made on `agreed_on` with `schedule`."""
    account = await account_of(db, name)
    amounts = [Decimal(amount) for _, amount in schedule]
    async with db.session() as session:
        row = Agreement(
            reference=f"XS{agreed_on:%Y%m%d}-{uuid.uuid4().hex[:6].upper()}",
            offer_id=uuid.uuid4().hex,
            conversation_id=f"conversation-{name}",
            debtor_id=account.debtor_id,
            account_id=account.id,
            plan=plan,
            currency="CNY",
            monthly_amount=max(amounts),
            months=len(schedule),
            total_payable=sum(amounts),
            amount_waived=Decimal("0.00"),
            first_due=schedule[0][0],
            last_due=schedule[-1][0],
            terms="{}",
            created_at=datetime.combine(agreed_on, time(10, 0), BEIJING),
        )
        session.add(row)
        await session.flush()
        session.add_all(
            AgreementInstallment(agreement_id=row.id, number=n, due_date=day, amount=amount)
            for n, ((day, _), amount) in enumerate(zip(schedule, amounts, strict=True), start=1)
        )
        if hold:
            await session.execute(
                sa.update(Account).where(Account.id == account.id).values(collections_hold=True)
            )
        await session.commit()
        return row.id


def payments_file(path: Path, rows: Sequence[str], header: str = HEADER) -> Path:
    """A payments CSV at `path` with `rows` (each a line without its newline)."""
    path.write_text(header + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


async def installments(db: Database, agreement_id: int) -> list[tuple[Decimal, str]]:
    """(paid amount, status) of each installment, in order."""
    async with db.session() as session:
        rows = await session.execute(
            sa.select(AgreementInstallment.paid_amount, AgreementInstallment.status)
            .where(AgreementInstallment.agreement_id == agreement_id)
            .order_by(AgreementInstallment.number)
        )
        return [(paid, status) for paid, status in rows]


async def agreement_row(db: Database, agreement_id: int) -> Agreement:
    async with db.session() as session:
        return (
            await session.execute(sa.select(Agreement).where(Agreement.id == agreement_id))
        ).scalar_one()


async def allocated(db: Database, agreement_id: int) -> list[Decimal]:
    """The sum of the allocations to each installment, in order."""
    async with db.session() as session:
        rows = await session.execute(
            sa.select(AgreementInstallment.number, sa.func.sum(PaymentAllocation.amount))
            .select_from(AgreementInstallment)
            .outerjoin(
                PaymentAllocation,
                PaymentAllocation.installment_id == AgreementInstallment.id,
            )
            .where(AgreementInstallment.agreement_id == agreement_id)
            .group_by(AgreementInstallment.number)
            .order_by(AgreementInstallment.number)
        )
        return [Decimal(str(total or 0)).quantize(Decimal("0.01")) for _, total in rows]


async def payment_references(db: Database) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(sa.select(Payment.reference).order_by(Payment.reference))
        return list(rows.scalars())


async def sweep_days(db: Database) -> list[date]:
    async with db.session() as session:
        return list(
            (await session.execute(sa.select(SweepRun.day).order_by(SweepRun.day))).scalars()
        )
