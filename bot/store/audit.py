"""The audit log: who did what, when, in which conversation, about which debtor.

Append-only: this module can add and read entries, nothing else, and the
database rejects UPDATE and DELETE on the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.redaction import redact_nested
from bot.store.encoding import json_default
from bot.store.engine import Database
from bot.store.models import AuditLog, utcnow

#: `bot`, `system` or `staff:<name>`.
#: The actor of everything the assistant itself does.
BOT_ACTOR = "bot"
ACTOR_PATTERN = re.compile(r"(?:bot|system|staff:[^\s:]{1,80})")
ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class AuditEntry:
    """One audit log entry, read-only."""

    id: int
    created_at: datetime
    actor: str
    action: str
    conversation_id: str | None
    debtor_id: int | None
    details: Mapping[str, Any]


def _entry(
    actor: str,
    action: str,
    conversation_id: str | None,
    debtor_id: int | None,
    details: Mapping[str, Any] | None,
    at: datetime | None,
) -> AuditLog:
    if not ACTOR_PATTERN.fullmatch(actor):
        raise ValueError(f"invalid actor {actor!r}: use bot, system or staff:<name>")
    if not ACTION_PATTERN.fullmatch(action):
        raise ValueError(f"invalid action {action!r}")
    # A mobile or national ID put in by mistake is kept masked (bot.domain.redaction).
    kept = redact_nested(dict(details or {}))
    text = json.dumps(kept, ensure_ascii=False, sort_keys=True, default=json_default)
    return AuditLog(
        created_at=at or utcnow(),
        actor=actor,
        action=action,
        conversation_id=conversation_id,
        debtor_id=debtor_id,
        details=text,
    )


async def record(
    session_or_db: AsyncSession | Database,
    actor: str,
    action: str,
    conversation_id: str | None = None,
    debtor_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append an entry.

    Given a session, the entry joins its transaction (the caller commits); given a
    `Database`, it is committed at once. Never put raw identity data in `details`:
    mobiles and national IDs in its texts are masked all the same.
    """
    entry = _entry(actor, action, conversation_id, debtor_id, details, at)
    if isinstance(session_or_db, AsyncSession):
        session_or_db.add(entry)
        return
    async with session_or_db.session() as session:
        session.add(entry)
        await session.commit()


async def entries(
    db: Database, conversation_id: str | None = None, debtor_id: int | None = None
) -> list[AuditEntry]:
    """Entries, oldest first, optionally only one conversation's and/or one debtor's."""
    query = sa.select(AuditLog).order_by(AuditLog.id)
    if conversation_id is not None:
        query = query.where(AuditLog.conversation_id == conversation_id)
    if debtor_id is not None:
        query = query.where(AuditLog.debtor_id == debtor_id)
    async with db.session() as session:
        rows = (await session.execute(query)).scalars().all()
    return [
        AuditEntry(
            id=row.id,
            created_at=row.created_at,
            actor=row.actor,
            action=row.action,
            conversation_id=row.conversation_id,
            debtor_id=row.debtor_id,
            details=MappingProxyType(json.loads(row.details)),
        )
        for row in rows
    ]
