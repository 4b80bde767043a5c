"""Tables of the payment feed: payments, their allocation to installments, sweep runs.

On the same `Base` as `bot.store.models`; importing this module registers the
tables in `Base.metadata` (the migrations' environment and the tests do).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from bot.store.columns import Money, UTCDateTime, utcnow
from bot.store.models import Base

#: Where a payment came from: a CSV file or the push endpoint.
PAYMENT_SOURCES = ("file", "push")


class Payment(Base):
    """One payment the bank's core system reported, once per `reference`."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount"),
        sa.CheckConstraint("source IN ('file', 'push')", name="source"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: The core system's reference: the same payment reported twice is stored once.
    reference: str = sa.Column(sa.String(64), nullable=False, unique=True)
    account_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    paid_on: date = sa.Column(sa.Date, nullable=False)
    amount: Decimal = sa.Column(Money, nullable=False)
    source: str = sa.Column(sa.String(8), nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


class PaymentAllocation(Base):
    """The part of a payment the sweep applied to one installment."""

    __tablename__ = "payment_allocations"
    __table_args__ = (
        sa.UniqueConstraint("payment_id", "installment_id", name="uq_payment_allocations_pair"),
        sa.CheckConstraint("amount > 0", name="amount"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    payment_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("payments.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    installment_id: int = sa.Column(
        sa.Integer,
        sa.ForeignKey("agreement_installments.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    #: Denormalised so that an agreement's allocations are replaced in one statement.
    agreement_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("agreements.id", ondelete="CASCADE"), nullable=False, index=True
    )
    amount: Decimal = sa.Column(Money, nullable=False)


class SweepRun(Base):
    """The daily sweep of one (Beijing) day: done once, whoever runs it."""

    __tablename__ = "sweep_runs"

    day: date = sa.Column(sa.Date, primary_key=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    #: JSON text: the counts of the payment step.
    counts: str = sa.Column(sa.Text, nullable=False)
    #: When the reminders of the day were queued; None until then.
    reminders_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
