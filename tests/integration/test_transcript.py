"""Transcripts read from Rasa's `events` table: a real SQLite file, and PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from bot.store import transcript
from tests.support.database import POSTGRES_URL
from tests.support.tracker_events import (
    EVENTS_DDL,
    T0,
    bot_event,
    make_tracker_db,
    user_event,
    write_events,
)

#: (sender_id, type_name, seconds after T0, data) in insertion order.
ROWS: list[tuple[str, str, float, dict[str, Any]]] = [
    ("conv-1", "action", 0, {"event": "action", "name": "action_session_start"}),
    ("conv-1", "user", 1, user_event("我想分期还款")),
    ("conv-1", "action", 2, {"event": "action", "name": "utter_ask"}),
    ("conv-1", "bot", 2.5, bot_event("请问您每月能还多少？", {"utter_action": "utter_ask"})),
    ("conv-2", "user", 3, user_event("别人的对话")),
    ("conv-1", "bot", 4, bot_event("您好，我是协商专员", {"staff": "李娜", "handoff": "RG1"})),
    ("conv-1", "slot", 5, {"event": "slot", "name": "x", "value": 1}),
    ("conv-1", "bot", 6, bot_event(None, buttons=["接受", "拒绝"])),
    ("conv-1", "bot", 7, bot_event(None)),
    ("conv-1", "user", 8, user_event("<script>alert(1)</script>")),
]


@pytest.fixture
async def sqlite_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    path = make_tracker_db(tmp_path / "tracker db #1.db", ROWS)
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.setenv("TRACKER_DB", str(path))
    yield path
    await transcript.dispose()


@pytest.fixture
def postgres_tracker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    schema = f"test_tracker_{uuid.uuid4().hex[:12]}"
    libpq = make_url(POSTGRES_URL).set(drivername="postgresql")
    admin = psycopg2.connect(libpq.render_as_string(hide_password=False))
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.execute(EVENTS_DDL.replace("INTEGER NOT NULL PRIMARY KEY", "SERIAL PRIMARY KEY"))
        write_events(admin, ROWS)
        url = libpq.update_query_dict({"options": f"-csearch_path={schema}"})
        monkeypatch.setenv("TRACKER_DB_URL", url.render_as_string(hide_password=False))
        yield schema
    finally:
        admin.rollback()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.commit()
        admin.close()


EXPECTED: list[dict[str, Any]] = [
    {"from": "debtor", "text": "我想分期还款", "staff": None, "offset": 1},
    {"from": "assistant", "text": "请问您每月能还多少？", "staff": None, "offset": 2.5},
    {"from": "staff", "text": "您好，我是协商专员", "staff": "李娜", "offset": 4},
    {"from": "assistant", "text": "", "staff": None, "offset": 6, "buttons": ["接受", "拒绝"]},
    {"from": "debtor", "text": "<script>alert(1)</script>", "staff": None, "offset": 8},
]


def _expected(ids: list[int]) -> list[dict[str, Any]]:
    items = []
    for event_id, expected in zip(ids, EXPECTED, strict=True):
        item = {key: value for key, value in expected.items() if key != "offset"}
        at = datetime.fromtimestamp(T0 + float(expected["offset"]), timezone.utc)
        items.append({"id": event_id, "at": at.isoformat(), **item})
    return items


async def _check_transcript() -> None:
    items = await transcript.transcript("conv-1")
    assert items == _expected([item["id"] for item in items])
    ids = [item["id"] for item in items]
    assert ids == sorted(ids)
    assert items[0]["at"].endswith("+00:00")
    assert await transcript.transcript("conv-1", after_id=ids[1]) == items[2:]
    assert await transcript.transcript("conv-1", after_id=ids[0], limit=2) == items[1:3]
    assert await transcript.transcript("conv-1", after_id=ids[-1]) == []
    assert [i["text"] for i in await transcript.transcript("conv-2")] == ["别人的对话"]
    assert await transcript.transcript("nobody") == []


async def test_transcript_from_sqlite(sqlite_tracker: Path) -> None:
    await _check_transcript()


async def test_transcript_from_postgresql(postgres_tracker: str) -> None:
    try:
        await _check_transcript()
    finally:
        await transcript.dispose()


async def test_engine_is_created_once_and_lazily(sqlite_tracker: Path) -> None:
    await transcript.dispose()
    assert transcript._engines == {}
    await transcript.transcript("conv-1")
    await transcript.transcript("conv-1")
    assert len(transcript._engines) == 1


async def test_a_missing_tracker_database_is_unavailable_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.setenv("TRACKER_DB", str(tmp_path / "missing.db"))
    try:
        with pytest.raises(transcript.TranscriptUnavailable):
            await transcript.transcript("conv-1")
    finally:
        await transcript.dispose()
    assert not (tmp_path / "missing.db").exists()


async def test_rows_with_broken_data_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_tracker_db(tmp_path / "t.db", [("c", "user", 0, user_event("好"))])
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES ('c', 'bot', 1, 'x{')"
    )
    connection.execute(
        "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES ('c', 'user', 2, '[1]')"
    )
    connection.commit()
    connection.close()
    monkeypatch.setenv("TRACKER_DB", str(path))
    try:
        assert [i["text"] for i in await transcript.transcript("c")] == ["好"]
    finally:
        await transcript.dispose()


def test_tracker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_DB_URL", "postgresql://rasa:pw@db:5432/rasa")
    assert transcript.tracker_url() == "postgresql+asyncpg://rasa:pw@db:5432/rasa"
    monkeypatch.setenv("TRACKER_DB_URL", "sqlite:////srv/tracker.db")
    assert transcript.tracker_url() == "sqlite+aiosqlite:////srv/tracker.db"
    monkeypatch.delenv("TRACKER_DB_URL")
    monkeypatch.setenv("TRACKER_DB", "/srv/rasa tracker.db")
    assert transcript.tracker_url() == (
        "sqlite+aiosqlite:///file:/srv/rasa%20tracker.db?mode=ro&uri=true"
    )
