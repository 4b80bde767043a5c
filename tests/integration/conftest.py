"""Fixtures shared by the data-layer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store.engine import Database
from bot.store.seed import seed_demo
from tests.support.database import BACKENDS, cheap_hashing, migrated_url


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database holding the demo debtors, on SQLite and on PostgreSQL.

    Modules that need an empty database define their own `db`.
    """
    with migrated_url(request.param, tmp_path) as url:
        database = Database(url)
        with cheap_hashing():
            await seed_demo(database)
        yield database
        await database.dispose()
