"""Where the bank data lives, and async sessions on it.

`DATABASE_URL` selects the database (SQLite or PostgreSQL). The application uses
the async drivers (aiosqlite, asyncpg); Alembic uses the sync ones (pysqlite,
psycopg2). Either form of URL is accepted everywhere and converted.

A search path may be given the libpq way, `?options=-csearch_path%3Dbank`; it is
honoured by psycopg2 natively and passed on to asyncpg here.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = REPO_ROOT / "var" / "bank.db"

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg2"}
_BACKENDS = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def database_url() -> str:
    """`DATABASE_URL`, or the SQLite file `var/bank.db` in the repository."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"


def _backend(url: URL) -> str:
    backend = _BACKENDS.get(url.drivername.split("+", 1)[0])
    if backend is None:
        raise ValueError(f"unsupported database {url.drivername!r}: use SQLite or PostgreSQL")
    return backend


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """`url` with the async driver (aiosqlite or asyncpg)."""
    parsed = make_url(url)
    return _render(parsed.set(drivername=_ASYNC_DRIVERS[_backend(parsed)]))


def sync_url(url: str) -> str:
    """`url` with the sync driver (pysqlite or psycopg2), for Alembic."""
    parsed = make_url(url)
    return _render(parsed.set(drivername=_SYNC_DRIVERS[_backend(parsed)]))


def _server_settings(options: str) -> dict[str, str]:
    """Settings from a libpq `options` value such as `-c search_path=bank`."""
    settings: dict[str, str] = {}
    words = iter(shlex.split(options))
    for word in words:
        if word == "-c":
            word = next(words, "")
        elif word.startswith("-c"):
            word = word[2:]
        else:
            raise ValueError(f"unsupported connection option {word!r}")
        key, separator, value = word.partition("=")
        if not separator or not key:
            raise ValueError(f"unsupported connection option {word!r}")
        settings[key.replace("-", "_")] = value
    return settings


def _engine_arguments(url: str) -> tuple[URL, dict[str, Any]]:
    parsed = make_url(async_url(url))
    if _backend(parsed) != "postgresql" or "options" not in parsed.query:
        return parsed, {}
    query = dict(parsed.query)
    options = query.pop("options")
    if not isinstance(options, str):
        raise ValueError("give the connection options once")
    return parsed.set(query=query), {"server_settings": _server_settings(options)}


def _enable_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An async engine and session factory, created on first use."""

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = async_url(url or database_url())
        self.echo = echo
        self._engine: AsyncEngine | None = None
        self._sessions: sessionmaker | None = None

    def __repr__(self) -> str:
        return f"Database({make_url(self.url)!r})"

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return _backend(make_url(self.url))

    @property
    def engine(self) -> AsyncEngine:
        """The async engine, created on first access."""
        if self._engine is None:
            url, connect_args = _engine_arguments(self.url)
            engine = create_async_engine(
                url, echo=self.echo, future=True, pool_pre_ping=True, connect_args=connect_args
            )
            if self.dialect == "sqlite":
                event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
            self._engine = engine
        return self._engine

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A new session; the caller commits. Rolled back on error, closed at exit."""
        if self._sessions is None:
            self._sessions = sessionmaker(
                self.engine, class_=AsyncSession, expire_on_commit=False, future=True
            )
        async with self._sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        """Close every pooled connection; the next use opens new ones."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None


def advisory_lock_key(value: str) -> int:
    """A signed 32-bit key for a PostgreSQL advisory lock on `value` (e.g. a conversation)."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big", signed=True)
