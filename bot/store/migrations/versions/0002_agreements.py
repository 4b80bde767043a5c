"""Agreements with their schedules, and proposals for human negotiators.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("offer_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey("debtors.id", ondelete="RESTRICT", name="fk_agreements_debtor_id"),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="RESTRICT", name="fk_agreements_account_id"),
            nullable=False,
        ),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("monthly_amount", MONEY, nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("total_payable", MONEY, nullable=False),
        sa.Column("amount_waived", MONEY, nullable=False),
        sa.Column("first_due", sa.Date(), nullable=False),
        sa.Column("last_due", sa.Date(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("reference", name="uq_agreements_reference"),
        sa.UniqueConstraint("offer_id", name="uq_agreements_offer_id"),
        sa.CheckConstraint(
            "plan IN ('personalized_installment', 'loan_extension', 'fee_waiver',"
            " 'lump_sum_settlement', 'promise_to_pay')",
            name="ck_agreements_plan",
        ),
        sa.CheckConstraint(
            "months >= 1 AND months <= 60 AND monthly_amount > 0 AND total_payable > 0"
            " AND amount_waived >= 0",
            name="ck_agreements_terms",
        ),
        sa.CheckConstraint("first_due <= last_due", name="ck_agreements_dates"),
    )
    for column in ("conversation_id", "debtor_id", "account_id"):
        op.create_index(f"ix_agreements_{column}", "agreements", [column])

    op.create_table(
        "agreement_installments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "agreement_id",
            sa.Integer(),
            sa.ForeignKey(
                "agreements.id", ondelete="CASCADE", name="fk_agreement_installments_agreement_id"
            ),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.UniqueConstraint("agreement_id", "number", name="uq_agreement_installments_number"),
        sa.CheckConstraint(
            "number >= 1 AND amount > 0", name="ck_agreement_installments_installment"
        ),
    )
    op.create_index(
        "ix_agreement_installments_agreement_id", "agreement_installments", ["agreement_id"]
    )

    op.create_table(
        "negotiation_proposals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey(
                "debtors.id", ondelete="RESTRICT", name="fk_negotiation_proposals_debtor_id"
            ),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey(
                "accounts.id", ondelete="RESTRICT", name="fk_negotiation_proposals_account_id"
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("reference", name="uq_negotiation_proposals_reference"),
    )
    for column in ("conversation_id", "debtor_id", "account_id", "created_at"):
        op.create_index(f"ix_negotiation_proposals_{column}", "negotiation_proposals", [column])


def downgrade() -> None:
    op.drop_table("negotiation_proposals")
    op.drop_table("agreement_installments")
    op.drop_table("agreements")
