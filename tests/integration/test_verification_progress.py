"""The pieces of a verification kept between messages (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import verification_progress as progress
from bot.store.engine import Database
from bot.store.models import utcnow
from tests.support.database import table_text


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.KEY_VARIABLE, progress.new_key())


async def test_pieces_given_one_by_one_are_read_back(db: Database) -> None:
    await progress.remember(db, "c-1", "id_last4", "987X")
    await progress.remember(db, "c-1", "phone", "15912340987")
    await progress.remember(db, "c-2", "phone", "15912340988")
    assert await progress.recall(db, "c-1") == {"id_last4": "987X", "phone": "15912340987"}
    # A correction replaces the piece, and leaves the other one.
    await progress.remember(db, "c-1", "phone", "15912340989")
    assert await progress.recall(db, "c-1") == {"id_last4": "987X", "phone": "15912340989"}
    assert await progress.recall(db, "c-2") == {"phone": "15912340988"}
    text = await table_text(db)
    assert not any(value in text for value in ("987X", "15912340987", "15912340989"))


async def test_forgotten_and_expired_pieces_are_gone(db: Database) -> None:
    await progress.remember(db, "c-1", "id_last4", "987X")
    await progress.forget(db, "c-1")
    assert await progress.recall(db, "c-1") == {}

    long_ago = utcnow() - progress.KEEP_FOR - timedelta(minutes=1)
    await progress.remember(db, "c-2", "id_last4", "987X", now=long_ago)
    assert await progress.recall(db, "c-2") == {}
    # The next piece any conversation gives removes the expired rows.
    await progress.remember(db, "c-3", "phone", "15912340987")
    assert "c-2" not in await table_text(db)


async def test_another_key_reads_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await progress.remember(db, "c-1", "id_last4", "987X")
    monkeypatch.setenv(progress.KEY_VARIABLE, progress.new_key())
    assert await progress.recall(db, "c-1") == {}
