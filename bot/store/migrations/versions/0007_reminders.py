"""Reminders before due dates, in an outbox; one active agreement per account.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer,
            sa.ForeignKey("debtors.id", ondelete="CASCADE", name="fk_reminders_debtor_id"),
            nullable=False,
        ),
        sa.Column(
            "agreement_id",
            sa.Integer,
            sa.ForeignKey("agreements.id", ondelete="CASCADE", name="fk_reminders_agreement_id"),
            nullable=False,
        ),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("send_after", TIME, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("via", sa.String(12), nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("key", name="uq_reminders_key"),
        sa.CheckConstraint(
            "kind IN ('installment_due', 'promise_due', 'plan_ended')", name="ck_reminders_kind"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'deferred', 'sent', 'failed')", name="ck_reminders_status"
        ),
        sa.CheckConstraint("channel IN ('wechat', 'webchat', 'rest')", name="ck_reminders_channel"),
        sa.CheckConstraint(
            "via IS NULL OR via IN ('custom', 'template', 'visit')", name="ck_reminders_via"
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_reminders_attempts"),
    )
    op.create_index("ix_reminders_debtor_id", "reminders", ["debtor_id"])
    op.create_index("ix_reminders_agreement_id", "reminders", ["agreement_id"])
    op.create_index("ix_reminders_conversation_id", "reminders", ["conversation_id"])
    op.create_index("ix_reminders_outbox", "reminders", ["status", "channel", "send_after"])
    op.create_table(
        "plan_end_notices",
        sa.Column(
            "agreement_id",
            sa.Integer,
            sa.ForeignKey(
                "agreements.id", ondelete="CASCADE", name="fk_plan_end_notices_agreement_id"
            ),
            primary_key=True,
        ),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("told_at", TIME, nullable=False),
    )
    op.create_index(
        "uq_agreements_active_account",
        "agreements",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    op.drop_index("uq_agreements_active_account", table_name="agreements")
    op.drop_table("plan_end_notices")
    op.drop_index("ix_reminders_outbox", table_name="reminders")
    op.drop_index("ix_reminders_conversation_id", table_name="reminders")
    op.drop_index("ix_reminders_agreement_id", table_name="reminders")
    op.drop_index("ix_reminders_debtor_id", table_name="reminders")
    op.drop_table("reminders")
