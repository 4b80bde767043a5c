"""Offers a negotiator builds from a proposal, approved and confirmed by the debtor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TIME = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)
STATUSES = (
    "awaiting_approval",
    "approved",
    "sent",
    "accepted",
    "declined",
    "expired",
    "changed",
    "superseded",
)
OPEN = "status IN ('awaiting_approval', 'approved', 'sent')"
PLANS = (
    "personalized_installment",
    "loan_extension",
    "fee_waiver",
    "lump_sum_settlement",
    "promise_to_pay",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "staff_offers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column(
            "case_id",
            sa.Integer,
            sa.ForeignKey("handoff_cases.id", ondelete="RESTRICT", name="fk_staff_offers_case_id"),
            nullable=False,
        ),
        sa.Column("proposal_reference", sa.String(32), nullable=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer,
            sa.ForeignKey("debtors.id", ondelete="RESTRICT", name="fk_staff_offers_debtor_id"),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="RESTRICT", name="fk_staff_offers_account_id"),
            nullable=False,
        ),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("months", sa.Integer, nullable=False),
        sa.Column("monthly_amount", MONEY, nullable=False),
        sa.Column("total_payable", MONEY, nullable=False),
        sa.Column("amount_waived", MONEY, nullable=False),
        sa.Column("first_due", sa.Date, nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column(
            "created_by",
            sa.Integer,
            sa.ForeignKey(
                "staff_members.id", ondelete="RESTRICT", name="fk_staff_offers_created_by"
            ),
            nullable=False,
        ),
        sa.Column(
            "approved_by",
            sa.Integer,
            sa.ForeignKey(
                "staff_members.id", ondelete="RESTRICT", name="fk_staff_offers_approved_by"
            ),
            nullable=True,
        ),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("approved_at", TIME, nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("answered_at", TIME, nullable=True),
        sa.Column("agreement_reference", sa.String(32), nullable=True),
        sa.UniqueConstraint("reference", name="uq_staff_offers_reference"),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_staff_offers_status"),
        sa.CheckConstraint(_in("plan", PLANS), name="ck_staff_offers_plan"),
        sa.CheckConstraint(
            "months >= 1 AND months <= 60 AND monthly_amount > 0 AND total_payable > 0"
            " AND amount_waived >= 0",
            name="ck_staff_offers_terms",
        ),
    )
    op.create_index("ix_staff_offers_conversation_id", "staff_offers", ["conversation_id"])
    op.create_index("ix_staff_offers_debtor_id", "staff_offers", ["debtor_id"])
    op.create_index("ix_staff_offers_expires_at", "staff_offers", ["expires_at"])
    op.create_index(
        "uq_staff_offers_open_case",
        "staff_offers",
        ["case_id"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_staff_offers_open_case", "staff_offers")
    op.drop_index("ix_staff_offers_expires_at", "staff_offers")
    op.drop_index("ix_staff_offers_debtor_id", "staff_offers")
    op.drop_index("ix_staff_offers_conversation_id", "staff_offers")
    op.drop_table("staff_offers")
