"""The records of an application database under test, read and written directly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from bot.store.engine import Database, sync_url
from bot.store.models import StaffMember


def query(database_url: str, statement: str, **values: Any) -> list[dict[str, Any]]:
    """Rows of one SQL query on the application database under test."""
    engine = sa.create_engine(sync_url(database_url), future=True)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.text(statement), values)]
    finally:
        engine.dispose()


def execute(database_url: str, statement: str, **values: Any) -> None:
    """Run one SQL statement on the application database under test and commit it."""
    engine = sa.create_engine(sync_url(database_url), future=True)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), values)
    finally:
        engine.dispose()


def handoff_cases(database_url: str, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's handoff cases, oldest first."""
    return query(
        database_url,
        "SELECT * FROM handoff_cases WHERE conversation_id = :c ORDER BY id",
        c=conversation_id,
    )


async def add_staff_member(db: Database, username: str, name: str, role: str) -> StaffMember:
    """A staff member who can claim and close cases (no console password: not signing in)."""
    async with db.session() as session:
        member = StaffMember(username=username, display_name=name, password_hash="!", role=role)
        session.add(member)
        await session.commit()
        await session.refresh(member)
    return member


def free_to_remind(database_url: str, mobile: str) -> None:
    """The demo debtor with `mobile` as if no earlier test of the session had met them.

    End-to-end tests share one database: earlier conversations leave the debtor's
    cases open, a distress case recent and reminders counted in the weekly cap, any
    of which rightly stops a reminder. Their cases are closed, their distress dated
    a year back and their reminders marked failed (those tests are over).
    """
    [debtor] = query(database_url, "SELECT id FROM debtors WHERE mobile = :m", m=mobile)
    now = datetime.now(timezone.utc)
    execute(
        database_url,
        "UPDATE handoff_cases SET status = 'closed', outcome = 'other', closed_at = :t,"
        " claimed_at = COALESCE(claimed_at, :t), resumed_at = :t"
        " WHERE (debtor_id = :d OR conversation_id IN (SELECT conversation_id FROM"
        " verification_attempts WHERE debtor_id = :d AND succeeded)) AND status != 'closed'",
        t=now,
        d=debtor["id"],
    )
    execute(
        database_url,
        "UPDATE handoff_cases SET created_at = :t"
        " WHERE (debtor_id = :d OR conversation_id IN (SELECT conversation_id FROM"
        " verification_attempts WHERE debtor_id = :d AND succeeded)) AND reason = 'distress'",
        t=now - timedelta(days=365),
        d=debtor["id"],
    )
    # Kept, so that nothing is queued again, but no longer counted in the weekly cap.
    execute(
        database_url,
        "UPDATE reminders SET status = 'failed', last_error = 'earlier test'"
        " WHERE debtor_id = :d AND status != 'failed'",
        d=debtor["id"],
    )
