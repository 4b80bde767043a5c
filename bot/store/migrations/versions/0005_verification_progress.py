"""The verification pieces given so far, encrypted, out of the tracker store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verification_progress",
        sa.Column("conversation_id", sa.String(255), primary_key=True),
        sa.Column("id_last4", sa.String(200), nullable=True),
        sa.Column("phone", sa.String(200), nullable=True),
        sa.Column("expires_at", TIME, nullable=False),
    )
    op.create_index("ix_verification_progress_expires_at", "verification_progress", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_verification_progress_expires_at", "verification_progress")
    op.drop_table("verification_progress")
