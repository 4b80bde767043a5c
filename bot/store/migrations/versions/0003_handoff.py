"""Staff, handoff cases for human negotiators and referrals to collections.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import (
    HANDOFF_OUTCOMES,
    HANDOFF_REASONS,
    HANDOFF_STATUSES,
    REFERRAL_REASONS,
    STAFF_ROLES,
)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "staff_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("username", name="uq_staff_members_username"),
        sa.CheckConstraint(_in("role", STAFF_ROLES), name="ck_staff_members_role"),
    )
    op.create_table(
        "staff_revoked_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", TIME, nullable=False),
    )
    op.create_index(
        "ix_staff_revoked_sessions_expires_at", "staff_revoked_sessions", ["expires_at"]
    )
    op.create_table(
        "staff_sign_in_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_staff_sign_in_failures_key", "staff_sign_in_failures", ["key"])
    op.create_index(
        "ix_staff_sign_in_failures_created_at", "staff_sign_in_failures", ["created_at"]
    )
    op.create_table(
        "handoff_cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey("debtors.id", ondelete="RESTRICT", name="fk_handoff_cases_debtor_id"),
            nullable=True,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="RESTRICT", name="fk_handoff_cases_account_id"),
            nullable=True,
        ),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("holds_collection", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="waiting"),
        sa.Column(
            "staff_id",
            sa.Integer(),
            sa.ForeignKey(
                "staff_members.id", ondelete="RESTRICT", name="fk_handoff_cases_staff_id"
            ),
            nullable=True,
        ),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("claimed_at", TIME, nullable=True),
        sa.Column("closed_at", TIME, nullable=True),
        sa.Column("resumed_at", TIME, nullable=True),
        sa.UniqueConstraint("reference", name="uq_handoff_cases_reference"),
        sa.CheckConstraint(_in("reason", HANDOFF_REASONS), name="ck_handoff_cases_reason"),
        sa.CheckConstraint(_in("status", HANDOFF_STATUSES), name="ck_handoff_cases_status"),
        sa.CheckConstraint(
            f"outcome IS NULL OR {_in('outcome', HANDOFF_OUTCOMES)}",
            name="ck_handoff_cases_outcome",
        ),
        sa.CheckConstraint("priority >= 1 AND priority <= 9", name="ck_handoff_cases_priority"),
    )
    op.create_index("ix_handoff_cases_conversation_id", "handoff_cases", ["conversation_id"])
    op.create_index("ix_handoff_cases_debtor_id", "handoff_cases", ["debtor_id"])
    op.create_index("ix_handoff_cases_queue", "handoff_cases", ["status", "priority", "created_at"])
    op.create_index(
        "uq_handoff_cases_open_conversation",
        "handoff_cases",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text("status != 'closed'"),
        postgresql_where=sa.text("status != 'closed'"),
    )
    op.create_table(
        "collections_referrals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey(
                "debtors.id", ondelete="RESTRICT", name="fk_collections_referrals_debtor_id"
            ),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey(
                "accounts.id", ondelete="RESTRICT", name="fk_collections_referrals_account_id"
            ),
            nullable=True,
        ),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column(
            "staff_id",
            sa.Integer(),
            sa.ForeignKey(
                "staff_members.id",
                ondelete="RESTRICT",
                name="fk_collections_referrals_staff_id",
            ),
            nullable=True,
        ),
        sa.UniqueConstraint("reference", name="uq_collections_referrals_reference"),
        sa.CheckConstraint(_in("reason", REFERRAL_REASONS), name="ck_collections_referrals_reason"),
        sa.CheckConstraint(
            "status IN ('queued', 'acknowledged')", name="ck_collections_referrals_status"
        ),
    )
    op.create_index("ix_collections_referrals_debtor_id", "collections_referrals", ["debtor_id"])
    op.create_index(
        "ix_collections_referrals_conversation_id", "collections_referrals", ["conversation_id"]
    )
    op.create_index(
        "uq_collections_referrals_queued",
        "collections_referrals",
        ["conversation_id", "debtor_id"],
        unique=True,
        sqlite_where=sa.text("status = 'queued'"),
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_collections_referrals_created_at", "collections_referrals", ["created_at"])


def downgrade() -> None:
    op.drop_table("collections_referrals")
    op.drop_index("uq_handoff_cases_open_conversation", table_name="handoff_cases")
    op.drop_table("handoff_cases")
    op.drop_table("staff_sign_in_failures")
    op.drop_table("staff_revoked_sessions")
    op.drop_table("staff_members")
