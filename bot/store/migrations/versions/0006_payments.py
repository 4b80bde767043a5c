"""Payments from the bank, applied to agreement installments and promises.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("accounts", sa.Column("account_no", sa.String(34), nullable=True))
    op.create_index("ix_accounts_account_no", "accounts", ["account_no"], unique=True)
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("ended_on", sa.Date(), nullable=True))
        batch.create_check_constraint(
            "status", "status IN ('active', 'completed', 'broken', 'replaced')"
        )
    with op.batch_alter_table("agreement_installments") as batch:
        batch.add_column(sa.Column("paid_amount", MONEY, nullable=False, server_default="0"))
        batch.add_column(sa.Column("status", sa.String(10), nullable=False, server_default="due"))
        batch.create_check_constraint("paid", "paid_amount >= 0 AND paid_amount <= amount")
        batch.create_check_constraint("status", "status IN ('due', 'paid', 'late')")
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="RESTRICT", name="fk_payments_account_id"),
            nullable=False,
        ),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("reference", name="uq_payments_reference"),
        sa.CheckConstraint("amount > 0", name="amount"),
        sa.CheckConstraint("source IN ('file', 'push')", name="source"),
    )
    op.create_index("ix_payments_account_id", "payments", ["account_id"])
    op.create_table(
        "payment_allocations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "payment_id",
            sa.Integer(),
            sa.ForeignKey(
                "payments.id", ondelete="RESTRICT", name="fk_payment_allocations_payment_id"
            ),
            nullable=False,
        ),
        sa.Column(
            "installment_id",
            sa.Integer(),
            sa.ForeignKey(
                "agreement_installments.id",
                ondelete="CASCADE",
                name="fk_payment_allocations_installment_id",
            ),
            nullable=False,
        ),
        sa.Column(
            "agreement_id",
            sa.Integer(),
            sa.ForeignKey(
                "agreements.id", ondelete="CASCADE", name="fk_payment_allocations_agreement_id"
            ),
            nullable=False,
        ),
        sa.Column("amount", MONEY, nullable=False),
        sa.UniqueConstraint("payment_id", "installment_id", name="uq_payment_allocations_pair"),
        sa.CheckConstraint("amount > 0", name="amount"),
    )
    for column in ("payment_id", "installment_id", "agreement_id"):
        op.create_index(f"ix_payment_allocations_{column}", "payment_allocations", [column])
    op.create_table(
        "sweep_runs",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("reminders_at", TIME, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sweep_runs")
    for column in ("payment_id", "installment_id", "agreement_id"):
        op.drop_index(f"ix_payment_allocations_{column}", "payment_allocations")
    op.drop_table("payment_allocations")
    op.drop_index("ix_payments_account_id", "payments")
    op.drop_table("payments")
    with op.batch_alter_table("agreement_installments") as batch:
        batch.drop_constraint("status", type_="check")
        batch.drop_constraint("paid", type_="check")
        batch.drop_column("status")
        batch.drop_column("paid_amount")
    with op.batch_alter_table("agreements") as batch:
        batch.drop_constraint("status", type_="check")
        batch.drop_column("ended_on")
    op.drop_index("ix_accounts_account_no", "accounts")
    op.drop_column("accounts", "account_no")
