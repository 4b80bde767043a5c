"""Test databases: migrated or seeded SQLite files, PostgreSQL schemas, cheap hashing."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.store import identity
from bot.store.engine import Database
from bot.store.migrate import upgrade
from bot.store.models import (
    Base,
)
from bot.store.payment_models import Payment  # noqa: F401 (registers the payment tables)
from bot.store.seed import seed_demo

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


BACKENDS = ("sqlite", "postgresql")


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def migrated_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database migrated by `bot.store.migrate.upgrade`, removed afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'bank-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    schema = f"test_bank_{uuid.uuid4().hex[:16]}"
    admin = psycopg2.connect(_libpq_url(POSTGRES_URL))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        url_text = url.render_as_string(hide_password=False)
        upgrade(url_text)
        yield url_text
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def sqlite_url(path: Path) -> str:
    """The application's (aiosqlite) URL of the SQLite file at `path`."""
    return f"sqlite+aiosqlite:///{path}"


def seeded_sqlite(path: Path) -> Path:
    """A new SQLite file at `path`, migrated by the real migrations and seeded with the
    demo debtors: a template that tests copy with `copy_sqlite` instead of migrating again."""
    url = sqlite_url(path)
    upgrade(url)
    database = Database(url)

    async def seed() -> None:
        try:
            await seed_demo(database)
        finally:
            await database.dispose()

    asyncio.run(seed())
    return path


def copy_sqlite(template: Path, path: Path) -> str:
    """URL of a copy at `path` of the SQLite file `template` (closed, as `seeded_sqlite`
    leaves it): the same schema and rows."""
    shutil.copyfile(template, path)
    return sqlite_url(path)


@contextmanager
def cheap_hashing() -> Iterator[None]:
    """Fast scrypt for fixtures that seed data (the real cost is tested on its own)."""
    saved = identity.SCRYPT_N
    identity.SCRYPT_N = 2**4
    try:
        yield
    finally:
        identity.SCRYPT_N = saved


async def table_text(db: Database) -> str:
    """Every value of every table, as text."""
    parts = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(sa.select(table))).all()
            parts += [str(value) for row in rows for value in row]
    return "\n".join(parts)


T0 = datetime(2025, 6, 1, 1, 0, tzinfo=timezone.utc)
