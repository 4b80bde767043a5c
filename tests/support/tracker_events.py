"""Rasa tracker-store rows written by hand, as the SQL tracker store writes them."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: When the first written event happened (seconds since the epoch).
T0 = datetime(2025, 6, 1, 2, 30, tzinfo=timezone.utc).timestamp()

#: Rasa's `events` table as its SQL tracker store creates it.
EVENTS_DDL = """
CREATE TABLE events (
    id INTEGER NOT NULL PRIMARY KEY,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT
)
"""


def user_event(text: str) -> dict[str, Any]:
    return {
        "event": "user",
        "text": text,
        "parse_data": {"intent": {"name": "inform", "confidence": 0.9}, "entities": []},
        "input_channel": "rest",
        "metadata": {},
    }


def bot_event(
    text: str | None, metadata: dict[str, Any] | None = None, buttons: list[str] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"elements": None, "quick_replies": None, "buttons": None}
    if buttons:
        data["buttons"] = [{"title": title, "payload": f"/{i}"} for i, title in enumerate(buttons)]
    return {"event": "bot", "text": text, "data": data, "metadata": metadata or {}}


INSERT = (
    "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def write_events(connection: Any, rows: list[tuple[str, str, float, dict[str, Any]]]) -> None:
    """Insert events (any DB-API connection with `%s` or `?` placeholders)."""
    sql = INSERT if isinstance(connection, sqlite3.Connection) else INSERT.replace("?", "%s")
    cursor = connection.cursor()
    for sender, type_name, offset, data in rows:
        cursor.execute(
            sql,
            (
                sender,
                type_name,
                T0 + offset,
                data.get("parse_data", {}).get("intent", {}).get("name"),
                data.get("name"),
                json.dumps(data, ensure_ascii=False),
            ),
        )
    connection.commit()


def make_tracker_db(path: Path, rows: list[tuple[str, str, float, dict[str, Any]]]) -> Path:
    """A SQLite tracker database at `path` holding `rows`."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(EVENTS_DDL)
        write_events(connection, rows)
    finally:
        connection.close()
    return path
