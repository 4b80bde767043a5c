"""Debtors, accounts, identity verification and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)
TIME = sa.DateTime(timezone=True)
APPEND_ONLY_MESSAGE = "audit_log is append-only"


def upgrade() -> None:
    op.create_table(
        "debtors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("full_name", sa.String(100), nullable=False),
        sa.Column("national_id_hash", sa.String(200), nullable=False),
        sa.Column("national_id_last4", sa.String(4), nullable=False),
        sa.Column("mobile", sa.String(11), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("mobile", name="uq_debtors_mobile"),
        sa.CheckConstraint("length(national_id_last4) = 4", name="ck_debtors_last4_length"),
        sa.CheckConstraint("length(mobile) = 11", name="ck_debtors_mobile_length"),
    )
    op.create_index("ix_debtors_full_name", "debtors", ["full_name"])

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey("debtors.id", name="fk_accounts_debtor_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("product", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False, server_default="CNY"),
        sa.Column("outstanding_principal", MONEY, nullable=False),
        sa.Column("overdue_principal", MONEY, nullable=False),
        sa.Column("interest", MONEY, nullable=False),
        sa.Column("penalty_fees", MONEY, nullable=False),
        sa.Column("missed_installments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("installment_amount", MONEY, nullable=True),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="overdue"),
        sa.Column("collections_hold", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("broken_plans", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint(
            "product IN ('credit_card', 'consumer_loan', 'mortgage', 'car_loan')",
            name="ck_accounts_product",
        ),
        sa.CheckConstraint(
            "outstanding_principal >= 0 AND overdue_principal >= 0 AND interest >= 0"
            " AND penalty_fees >= 0",
            name="ck_accounts_amounts",
        ),
        sa.CheckConstraint(
            "missed_installments >= 0 AND days_past_due >= 0 AND broken_plans >= 0",
            name="ck_accounts_counts",
        ),
    )
    op.create_index("ix_accounts_debtor_id", "accounts", ["debtor_id"])

    op.create_table(
        "verification_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey(
                "debtors.id", name="fk_verification_attempts_debtor_id", ondelete="SET NULL"
            ),
            nullable=True,
        ),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    for column in ("conversation_id", "debtor_id", "created_at"):
        op.create_index(f"ix_verification_attempts_{column}", "verification_attempts", [column])

    op.create_table(
        "verification_locks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column(
            "debtor_id",
            sa.Integer(),
            sa.ForeignKey(
                "debtors.id", name="fk_verification_locks_debtor_id", ondelete="SET NULL"
            ),
            nullable=True,
        ),
        sa.Column("locked_until", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    for column in ("conversation_id", "debtor_id"):
        op.create_index(f"ix_verification_locks_{column}", "verification_locks", [column])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=True),
        sa.Column("debtor_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
    )
    for column in ("created_at", "action", "conversation_id", "debtor_id"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{operation.lower()} BEFORE {operation} ON audit_log"
                f" BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    op.drop_table("audit_log")
    op.drop_table("verification_locks")
    op.drop_table("verification_attempts")
    op.drop_table("accounts")
    op.drop_table("debtors")
