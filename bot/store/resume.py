"""Giving a conversation back to the assistant once staff closed its case.

Whether the assistant has resumed a conversation is kept in the database
(`handoff_cases.resumed_at`), so that whoever closes a case, or retries after a
failure or a restart, can tell it to answer again; a lock per conversation makes
sure that two consoles never resume it twice.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from bot.store.cases import CaseView, case_view, with_staff_name
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import HandoffCase, utcnow

#: The table's columns, for expressions the typed attributes cannot express.
CASES = HandoffCase.__table__
#: Namespace of the PostgreSQL advisory locks taken while resuming a conversation.
_RESUME_LOCK_NAMESPACE = 0x4844_0001
#: The same on SQLite, where one console process serves the database; a lock
#: goes when no request holds or awaits it.
_local_resume_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def mark_resumed(db: Database, conversation_id: str) -> None:
    """Record that the assistant answers the conversation again after its closed cases."""
    async with db.session() as session:
        await session.execute(
            sa.update(HandoffCase)
            .where(
                HandoffCase.conversation_id == conversation_id,
                HandoffCase.status == "closed",
                CASES.c.resumed_at.is_(None),
            )
            .values(resumed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        await session.commit()


@asynccontextmanager
async def resuming(db: Database, conversation_id: str) -> AsyncIterator[None]:
    """Held while one console resumes a conversation, so that two never resume it twice.

    Several consoles close cases and retry failed resumptions at once; on
    PostgreSQL this is an advisory lock on the conversation, held on its own
    connection for the duration. Check `needs_resume` inside it. SQLite serves
    one console, whose requests take a lock in this process.
    """
    if db.dialect != "postgresql":
        lock = _local_resume_locks.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            yield
        return
    key = {
        "namespace": _RESUME_LOCK_NAMESPACE,
        "key": advisory_lock_key(conversation_id),
    }
    async with db.engine.connect() as connection:
        await connection.execute(sa.text("SELECT pg_advisory_lock(:namespace, :key)"), key)
        try:
            yield
        finally:
            await connection.execute(sa.text("SELECT pg_advisory_unlock(:namespace, :key)"), key)


async def needs_resume(db: Database, conversation_id: str) -> bool:
    """Whether a closed case of the conversation still waits for the assistant to resume."""
    async with db.session() as session:
        waiting = await session.execute(
            sa.select(HandoffCase.id)
            .where(
                HandoffCase.conversation_id == conversation_id,
                HandoffCase.status == "closed",
                CASES.c.resumed_at.is_(None),
            )
            .limit(1)
        )
        return waiting.first() is not None


async def awaiting_resume(db: Database, closed_since: datetime) -> list[CaseView]:
    """Cases closed since `closed_since` whose conversation the assistant has not resumed.

    A conversation with a newer open case is left alone.
    """
    newer = aliased(HandoffCase)
    async with db.session() as session:
        rows = (
            await session.execute(
                with_staff_name()
                .where(
                    HandoffCase.status == "closed",
                    CASES.c.resumed_at.is_(None),
                    CASES.c.closed_at >= closed_since,
                    ~sa.exists().where(
                        newer.conversation_id == HandoffCase.conversation_id,
                        newer.status != "closed",
                    ),
                )
                .order_by(HandoffCase.closed_at)
            )
        ).all()
    return [case_view(case, name) for case, name in rows]
