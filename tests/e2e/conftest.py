"""Fixtures that start the real action server and Rasa server once per database.

Every end-to-end test runs twice: with the application database on SQLite and
on the PostgreSQL server (`E2E_POSTGRES_URL`, default the local `postgres`
user's server). Each run gets a fresh database, migrated and seeded with the
demo debtors, and a fresh tracker database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from bot.store.engine import sync_url
from bot.tools.stack import ROOT, Stack, StackConfig
from tests.support.ports import e2e_port
from tests.support.rasa_api import API_TOKEN, RestClient
from tests.support.records import execute, query
from tests.support.wechat_fake import stack_env as wechat_stack_env

POSTGRES_URL = os.environ.get("E2E_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = os.environ.get("E2E_DATABASES", "sqlite,postgresql").split(",")


#: The database the `dialogue` tests are played on (the deployment's).
DIALOGUE_DATABASE = "postgresql" if "postgresql" in BACKENDS else BACKENDS[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Play `dialogue` tests on one database only.

    They check replies; the database code under them is tested on both
    databases by the unit tests and by the end-to-end tests that read records.
    """
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        if item.get_closest_marker("dialogue") and backend not in (None, DIALOGUE_DATABASE):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _seed(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "bot.store", "seed-demo"], cwd=ROOT, env=env, check=True)


def _admin(statement: sql.Composable) -> None:
    connection = psycopg2.connect(f"{POSTGRES_URL}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A fresh, migrated and seeded application database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'bank.db'}"
        _seed(url)
        yield url
        return
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{POSTGRES_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        _seed(url)
        yield url
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def rasa_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running stack: E2E_RASA_URL if set, else one started for the tests."""
    existing = os.environ.get("E2E_RASA_URL")
    if existing:
        yield existing.rstrip("/")
        return
    scratch: Path = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        rasa_port=e2e_port(15005, "E2E_RASA_PORT"),
        action_port=e2e_port(15055, "E2E_ACTION_PORT"),
        auth_token=API_TOKEN,
        log_dir=scratch / "log",
        extra_env={
            "TRACKER_DB": str(scratch / "tracker.db"),
            "DATABASE_URL": database_url,
            **wechat_stack_env(e2e_port(15099, "E2E_WECHAT_PORT")),
        },
        console_port=e2e_port(15080, "E2E_CONSOLE_PORT"),
    )
    with Stack(config) as stack:
        _consoles[stack.config.rasa_url] = stack.config.console_url
        _stacks[stack.config.rasa_url] = stack
        try:
            yield stack.config.rasa_url
        finally:
            del _stacks[stack.config.rasa_url]


#: The staff console started with each stack, by the stack's Rasa URL.
_consoles: dict[str, str] = {}
#: The stacks started by `rasa_url`, by their Rasa URL.
_stacks: dict[str, Stack] = {}


@pytest.fixture(scope="session")
def session_stack(rasa_url: str) -> Stack | None:
    """The stack under test, for the tests that kill or restart its servers.

    None when the tests run against a stack started elsewhere (E2E_RASA_URL):
    those tests then start a stack of their own. A test that stops a server
    must leave it running again when it ends, passed or failed.
    """
    return _stacks.get(rasa_url)


@pytest.fixture(scope="session")
def console_url(rasa_url: str) -> str:
    """URL of the staff console of the stack under test."""
    if rasa_url in _consoles:
        return _consoles[rasa_url]
    existing = os.environ.get("E2E_CONSOLE_URL")
    if not existing:
        pytest.fail("E2E_RASA_URL is set: set E2E_CONSOLE_URL to its staff console too")
    return existing.rstrip("/")


@pytest.fixture(autouse=True)
def _fresh_verification_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Forget verification attempts and locks after each test.

    A lock-out applies to the debtor across conversations for 30 minutes, so one
    test's failed attempts for 张伟 would otherwise lock him for the next test.
    The append-only audit log is kept.
    """
    yield
    if "database_url" not in request.fixturenames:
        return
    url = sync_url(request.getfixturevalue("database_url"))
    engine = sa.create_engine(url, future=True)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM verification_locks"))
            connection.execute(sa.text("DELETE FROM verification_attempts"))
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _no_active_agreement_after_a_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """End the agreements and promises a test left active.

    An account has at most one active agreement, and the demo debtors agree
    plans in many tests: each test starts with none active (the rows stay).
    """
    yield
    if "database_url" not in request.fixturenames:
        return
    url = sync_url(request.getfixturevalue("database_url"))
    engine = sa.create_engine(url, future=True)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE agreements SET status = 'completed', ended_on = CURRENT_DATE"
                    " WHERE status = 'active'"
                )
            )
    finally:
        engine.dispose()


@pytest.fixture
async def client(rasa_url: str) -> Any:
    async with aiohttp.ClientSession() as session:
        yield RestClient(session, rasa_url)


@pytest.fixture
def lift_holds(database_url: str) -> Iterator[None]:
    """Disputes, agreements and promises put accounts on hold: later tests start without them."""
    before = {
        row["id"]: row["collections_hold"]
        for row in query(database_url, "SELECT id, collections_hold FROM accounts")
    }
    yield
    for account_id, hold in before.items():
        execute(
            database_url,
            "UPDATE accounts SET collections_hold = :h WHERE id = :i",
            h=hold,
            i=account_id,
        )
