"""What the debtor, the assistant and staff said in a conversation, from Rasa's tracker store.

Reads Rasa's own `events` table (only `user` and `bot` events) in the tracker
database: the SQLite file `TRACKER_DB` (default `var/tracker.db`), or the
SQLAlchemy URL `TRACKER_DB_URL` when set. A bot event whose metadata names
`staff` was written by a person through the staff console. Verification secrets
are masked on the way out too (`bot.domain.redaction`), for rows older than the
tracker store's own masking.

The async engine is created on first use, once per process and URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.domain.redaction import redact_event
from bot.store.engine import REPO_ROOT, _engine_arguments, async_url

DEFAULT_TRACKER_DB = REPO_ROOT / "var" / "tracker.db"
MAX_LIMIT = 1000

#: Rasa's `events` table, declared by hand: only the columns read here.
events = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("data", sa.Text),
)

_engines: dict[str, AsyncEngine] = {}


class TranscriptUnavailable(Exception):
    """The tracker database cannot be read (missing, not yet created by Rasa, down)."""


def tracker_url() -> str:
    """The async SQLAlchemy URL of the tracker database, from the environment.

    `TRACKER_DB_URL` may name the sync or the async driver, and a PostgreSQL
    search path the libpq way (`?options=-csearch_path%3Drasa`), as `DATABASE_URL`.
    """
    url = os.environ.get("TRACKER_DB_URL", "").strip()
    if url:
        return async_url(url)
    # Read-only: a missing file is an error, not a new empty database.
    return f"sqlite+aiosqlite:///file:{urllib.parse.quote(str(_sqlite_path()))}?mode=ro&uri=true"


def _sqlite_path() -> Path | None:
    """The SQLite tracker file, unless `TRACKER_DB_URL` names another database."""
    if os.environ.get("TRACKER_DB_URL", "").strip():
        return None
    return Path(os.environ.get("TRACKER_DB", "").strip() or DEFAULT_TRACKER_DB)


def _engine() -> AsyncEngine:
    url = tracker_url()
    engine = _engines.get(url)
    if engine is None:
        parsed, connect_args = _engine_arguments(url)
        engine = create_async_engine(
            parsed, future=True, pool_pre_ping=True, connect_args=connect_args
        )
        _engines[url] = engine
    return engine


async def dispose() -> None:
    """Close the tracker database connections (the next call opens new ones)."""
    engines = list(_engines.values())
    _engines.clear()
    for engine in engines:
        await engine.dispose()


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def _item(row: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    # Rows stored before the tracker store masked verification secrets still hold them.
    data = redact_event(data)
    text = data.get("text")
    text = text if isinstance(text, str) else ""
    staff: str | None = None
    speaker = "debtor"
    buttons: list[str] = []
    script: str | None = None
    if row.type_name == "bot":
        speaker = "assistant"
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("script"), str):
            script = metadata["script"]
        if isinstance(metadata, dict) and metadata.get("staff"):
            speaker = "staff"
            staff = str(metadata["staff"])
        extra = data.get("data")
        if isinstance(extra, dict) and isinstance(extra.get("buttons"), list):
            buttons = [
                str(button.get("title", ""))
                for button in extra["buttons"]
                if isinstance(button, dict) and button.get("title")
            ]
    if not text and not buttons:
        return None
    item: dict[str, Any] = {
        "id": row.id,
        "at": _iso(row.timestamp),
        "from": speaker,
        "text": text,
        "staff": staff,
    }
    if buttons:
        item["buttons"] = buttons
    if script:
        item["script"] = script
    return item


async def transcript(conversation_id: str, after_id: int = 0, limit: int = 500) -> list[dict]:
    """Messages of the conversation after event `after_id`, oldest first, at most `limit`.

    Each is {"id", "at" (ISO 8601 UTC), "from" ("debtor" | "assistant" | "staff"),
    "text", "staff" (the staff member's display name or None)}, plus "buttons"
    (their titles) when the assistant offered buttons, and "script" when a bot
    message names the script it was sent in (`zh-Hant-TW` …). Events without
    text or buttons are left out.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = (
        sa.select(events.c.id, events.c.type_name, events.c.timestamp, events.c.data)
        .where(
            events.c.sender_id == conversation_id,
            events.c.type_name.in_(("user", "bot")),
            events.c.id > after_id,
        )
        .order_by(events.c.id)
        .limit(limit)
    )
    path = _sqlite_path()
    if path is not None and not await asyncio.to_thread(path.is_file):
        raise TranscriptUnavailable(f"no tracker database at {path}")
    try:
        async with _engine().connect() as connection:
            rows = (await connection.execute(query)).all()
    except (sa.exc.DBAPIError, OSError) as error:
        raise TranscriptUnavailable(str(error)) from error
    return [item for item in map(_item, rows) if item is not None]
