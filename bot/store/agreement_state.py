"""Where a debtor's agreements stand: paid so far, what is next, what is late.

Read by the conversation (a debtor asking about their plan), by the console
(the case page and the supervisors' list of agreements due, late and broken
today) and for the notice of a broken plan in the debtor's next conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.store import audit
from bot.store.engine import Database
from bot.store.models import Agreement, AgreementInstallment
from bot.store.payment_models import Payment, PaymentAllocation
from bot.store.reminder_models import PlanEndNotice

AGREEMENTS = Agreement.__table__
INSTALLMENTS = AgreementInstallment.__table__
CENT = Decimal("0.01")


def _cents(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(CENT)


@dataclass(frozen=True)
class InstallmentState:
    """One installment and what was paid on it."""

    number: int
    due_date: date
    amount: Decimal
    paid_amount: Decimal
    status: str

    @property
    def owed(self) -> Decimal:
        return self.amount - self.paid_amount


@dataclass(frozen=True)
class PaymentRecord:
    """A payment the bank reported on the agreement's account."""

    reference: str
    paid_on: date
    amount: Decimal
    applied: Decimal


@dataclass(frozen=True)
class AgreementState:
    """An agreement or promise with its installments and payments."""

    id: int
    reference: str
    plan: str
    status: str
    account_id: int
    debtor_id: int
    currency: str
    total_payable: Decimal
    first_due: date
    last_due: date
    ended_on: date | None
    created_at: datetime
    installments: tuple[InstallmentState, ...]
    payments: tuple[PaymentRecord, ...] = field(default=())

    @property
    def paid(self) -> Decimal:
        return sum((i.paid_amount for i in self.installments), Decimal(0))

    @property
    def late(self) -> tuple[InstallmentState, ...]:
        return tuple(i for i in self.installments if i.status == "late")

    def next_due(self, today: date) -> InstallmentState | None:
        """The first installment not fully paid that falls due today or later."""
        for installment in self.installments:
            if (
                installment.status != "paid"
                and installment.owed > 0
                and installment.due_date >= today
            ):
                return installment
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts as strings, dates as ISO 8601."""
        return {
            "id": self.id,
            "reference": self.reference,
            "plan": self.plan,
            "status": self.status,
            "account_id": self.account_id,
            "currency": self.currency,
            "total_payable": str(self.total_payable),
            "paid": str(self.paid),
            "first_due": self.first_due.isoformat(),
            "last_due": self.last_due.isoformat(),
            "ended_on": None if self.ended_on is None else self.ended_on.isoformat(),
            "installments": [
                {
                    "number": i.number,
                    "due_date": i.due_date.isoformat(),
                    "amount": str(i.amount),
                    "paid_amount": str(i.paid_amount),
                    "status": i.status,
                }
                for i in self.installments
            ],
            "payments": [
                {
                    "reference": p.reference,
                    "paid_on": p.paid_on.isoformat(),
                    "amount": str(p.amount),
                    "applied": str(p.applied),
                }
                for p in self.payments
            ],
        }


async def _states(db: Database, where: Any, *, with_payments: bool = False) -> list[AgreementState]:
    async with db.session() as session:
        agreements = (
            (
                await session.execute(
                    sa.select(Agreement)
                    .where(where)
                    .order_by(AGREEMENTS.c.created_at.desc(), AGREEMENTS.c.id.desc())
                )
            )
            .scalars()
            .all()
        )
        ids = [a.id for a in agreements]
        installments: dict[int, list[InstallmentState]] = {i: [] for i in ids}
        payments: dict[int, list[PaymentRecord]] = {i: [] for i in ids}
        if ids:
            rows = (
                await session.execute(
                    sa.select(AgreementInstallment)
                    .where(INSTALLMENTS.c.agreement_id.in_(ids))
                    .order_by(AgreementInstallment.agreement_id, AgreementInstallment.number)
                )
            ).scalars()
            for row in rows:
                installments[row.agreement_id].append(
                    InstallmentState(
                        row.number,
                        row.due_date,
                        _cents(row.amount),
                        _cents(row.paid_amount or Decimal(0)),
                        row.status,
                    )
                )
        if ids and with_payments:
            applied = (
                await session.execute(
                    sa.select(
                        PaymentAllocation.agreement_id,
                        Payment.reference,
                        Payment.paid_on,
                        Payment.amount,
                        sa.func.sum(PaymentAllocation.amount),
                    )
                    .join(Payment, Payment.id == PaymentAllocation.payment_id)
                    .where(PaymentAllocation.__table__.c.agreement_id.in_(ids))
                    .group_by(
                        PaymentAllocation.agreement_id,
                        Payment.id,
                        Payment.reference,
                        Payment.paid_on,
                        Payment.amount,
                    )
                    .order_by(Payment.paid_on, Payment.id)
                )
            ).all()
            for agreement_id, reference, paid_on, amount, total in applied:
                payments[agreement_id].append(
                    PaymentRecord(reference, paid_on, _cents(amount), _cents(Decimal(str(total))))
                )
    return [
        AgreementState(
            id=a.id,
            reference=a.reference,
            plan=a.plan,
            status=a.status,
            account_id=a.account_id,
            debtor_id=a.debtor_id,
            currency=a.currency,
            total_payable=_cents(a.total_payable),
            first_due=a.first_due,
            last_due=a.last_due,
            ended_on=a.ended_on,
            created_at=a.created_at,
            installments=tuple(installments[a.id]),
            payments=tuple(payments[a.id]),
        )
        for a in agreements
    ]


async def debtor_agreements(
    db: Database, debtor_id: int, *, with_payments: bool = False
) -> list[AgreementState]:
    """The debtor's agreements and promises, newest first."""
    return await _states(db, Agreement.debtor_id == debtor_id, with_payments=with_payments)


async def active_agreements(db: Database, debtor_id: int) -> list[AgreementState]:
    """The debtor's active agreements and promises (at most one per account), newest first."""
    return await _states(
        db, sa.and_(Agreement.debtor_id == debtor_id, Agreement.status == "active")
    )


def active_on(states: Sequence[AgreementState], account_id: int) -> AgreementState | None:
    """The active agreement on `account_id`, if any."""
    return next((s for s in states if s.account_id == account_id and s.status == "active"), None)


async def broken_untold(db: Database, debtor_id: int) -> AgreementState | None:
    """The debtor's latest broken plan not yet told in a conversation, if any."""
    told = sa.select(PlanEndNotice.agreement_id)
    states = await _states(
        db,
        sa.and_(
            Agreement.debtor_id == debtor_id,
            Agreement.status == "broken",
            AGREEMENTS.c.id.not_in(told),
        ),
    )
    return states[0] if states else None


async def record_told(
    db: Database, agreement_id: int, conversation_id: str, debtor_id: int
) -> None:
    """The debtor was told in `conversation_id` that the plan ended (once)."""
    try:
        async with db.session() as session:
            session.add(PlanEndNotice(agreement_id=agreement_id, conversation_id=conversation_id))
            await audit.record(
                session,
                audit.BOT_ACTOR,
                "plan_end_told",
                conversation_id,
                debtor_id,
                {"agreement_id": agreement_id},
            )
            await session.commit()
    except IntegrityError:
        pass  # told in another conversation at the same moment


@dataclass(frozen=True)
class DayLists:
    """The supervisors' list of one day: agreements with something due, late or broken."""

    day: date
    due: list[tuple[AgreementState, InstallmentState]]
    late: list[tuple[AgreementState, InstallmentState]]
    broken: list[AgreementState]

    def to_dict(self) -> dict[str, Any]:
        def pair(item: tuple[AgreementState, InstallmentState]) -> dict[str, Any]:
            state, installment = item
            return {
                "agreement": state.reference,
                "agreement_id": state.id,
                "plan": state.plan,
                "debtor_id": state.debtor_id,
                "account_id": state.account_id,
                "currency": state.currency,
                "number": installment.number,
                "due_date": installment.due_date.isoformat(),
                "amount": str(installment.amount),
                "paid_amount": str(installment.paid_amount),
                "status": installment.status,
            }

        return {
            "date": self.day.isoformat(),
            "due": [pair(item) for item in self.due],
            "late": [pair(item) for item in self.late],
            "broken": [
                {
                    "agreement": s.reference,
                    "agreement_id": s.id,
                    "plan": s.plan,
                    "debtor_id": s.debtor_id,
                    "account_id": s.account_id,
                    "currency": s.currency,
                    "paid": str(s.paid),
                    "total_payable": str(s.total_payable),
                    "ended_on": None if s.ended_on is None else s.ended_on.isoformat(),
                }
                for s in self.broken
            ],
        }


async def day_lists(db: Database, day: date) -> DayLists:
    """Installments of active agreements due on `day`, late ones, and plans broken on `day`."""
    active = await _states(db, Agreement.status == "active")
    due = [
        (s, i) for s in active for i in s.installments if i.due_date == day and i.status != "paid"
    ]
    late = [(s, i) for s in active for i in s.installments if i.status == "late"]
    broken = await _states(db, sa.and_(Agreement.status == "broken", AGREEMENTS.c.ended_on == day))
    return DayLists(day=day, due=due, late=late, broken=broken)
