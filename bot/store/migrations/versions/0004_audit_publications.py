"""Audit entries published to the message broker by the outbox relay (`bot.store.audit_relay`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_publications",
        sa.Column("audit_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("published_at", TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_publications")
