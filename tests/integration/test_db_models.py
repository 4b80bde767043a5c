"""Schema, migrations, column types, the audit log and the engine (SQLite and PostgreSQL).

Also home of the database fixtures' helpers used by the other data-layer tests:
every test gets a freshly migrated database, a temporary SQLite file or a randomly
named PostgreSQL schema that is dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.store import audit
from bot.store import engine as engine_module
from bot.store.engine import Database, _server_settings, async_url, database_url, sync_url
from bot.store.migrate import downgrade, upgrade
from bot.store.models import (
    Account,
    AppendOnlyError,
    AuditLog,
    Base,
    Debtor,
    to_money,
)
from bot.store.payment_models import Payment  # noqa: F401 (its tables)
from bot.store.reminder_models import Reminder  # noqa: F401 (its tables)
from bot.store.staff_offers import StaffOfferRecord  # noqa: F401 (its table)
from tests.support.database import BACKENDS, T0, migrated_url

TABLES = {
    "debtors",
    "accounts",
    "verification_attempts",
    "verification_locks",
    "verification_progress",
    "audit_log",
    "agreements",
    "agreement_installments",
    "negotiation_proposals",
    "staff_members",
    "staff_sign_in_failures",
    "staff_revoked_sessions",
    "handoff_cases",
    "collections_referrals",
    "audit_publications",
    "payments",
    "payment_allocations",
    "sweep_runs",
    "reminders",
    "plan_end_notices",
    "staff_offers",
}


# --- helpers shared by the data-layer tests -----------------------------------------------


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    with migrated_url(request.param, tmp_path) as url:
        database = Database(url)
        yield database
        await database.dispose()


async def add_debtor(db: Database, mobile: str = "13312345678", **values: object) -> int:
    defaults = {"full_name": "赵六", "national_id_hash": "scrypt$0$0", "national_id_last4": "1234"}
    debtor = Debtor(mobile=mobile, **(defaults | values))
    async with db.session() as session:
        session.add(debtor)
        await session.commit()
    return debtor.id


# --- schema and migrations -----------------------------------------------------------------


async def test_migration_creates_the_tables_at_head(db: Database) -> None:
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        version = await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
    assert tables == TABLES | {"alembic_version"}
    assert version.scalar_one() == "0008"


async def test_models_match_the_migration(db: Database) -> None:
    def differences(connection: sa.engine.Connection) -> list:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_removes_everything_and_upgrade_restores_it(backend: str, tmp_path: Path) -> None:
    with migrated_url(backend, tmp_path) as url:
        downgrade(url, "base")
        engine = sa.create_engine(sync_url(url), future=True)
        try:
            assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
            upgrade(url)
            upgrade(url)  # already at head: nothing to do
            assert TABLES <= set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with db.session() as session:
            session.add(small_account(999, "credit_card"))
            await session.commit()


def small_account(debtor_id: int, product: str) -> Account:
    """A one-yuan overdue account, for constraint tests."""
    return Account(
        debtor_id=debtor_id,
        product=product,
        outstanding_principal=Decimal("1.00"),
        overdue_principal=Decimal("1.00"),
        interest=Decimal("0.00"),
        penalty_fees=Decimal("0.00"),
        days_past_due=1,
    )


async def test_product_must_be_known(db: Database) -> None:
    debtor_id = await add_debtor(db)
    with pytest.raises(sa.exc.IntegrityError):
        async with db.session() as session:
            session.add(small_account(debtor_id, "payday_loan"))
            await session.commit()


async def test_debtor_mobile_is_unique_and_fields_have_their_length(db: Database) -> None:
    await add_debtor(db, "13312345678")
    with pytest.raises(sa.exc.IntegrityError):
        await add_debtor(db, "13312345678")
    with pytest.raises(sa.exc.IntegrityError):
        await add_debtor(db, "1331234567")
    with pytest.raises(sa.exc.IntegrityError):
        await add_debtor(db, "13312345670", national_id_last4="123")


# --- column types ----------------------------------------------------------------------------


async def test_times_come_back_timezone_aware_utc(db: Database) -> None:
    beijing = timezone(timedelta(hours=8))
    created = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=beijing)
    debtor_id = await add_debtor(db, created_at=created)
    async with db.session() as session:
        stored = (
            await session.execute(sa.select(Debtor.created_at).where(Debtor.id == debtor_id))
        ).scalar_one()
    assert stored == created
    assert stored.utcoffset() == timedelta(0)
    assert stored.hour == 1


async def test_default_times_are_utc(db: Database) -> None:
    before = datetime.now(timezone.utc)
    debtor_id = await add_debtor(db)
    async with db.session() as session:
        debtor = await session.get(Debtor, debtor_id)
    assert debtor is not None
    assert debtor.created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= debtor.created_at <= datetime.now(timezone.utc)


async def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await add_debtor(db, created_at=datetime(2025, 1, 1))


AMOUNTS = ["0.00", "0.01", "0.10", "19.99", "3200.00", "12345678.91", "999999999999.99"]


async def test_money_round_trips_exactly(db: Database) -> None:
    debtor_id = await add_debtor(db)
    async with db.session() as session:
        for amount in map(Decimal, AMOUNTS):
            session.add(
                Account(
                    debtor_id=debtor_id,
                    product="mortgage",
                    outstanding_principal=amount,
                    overdue_principal=amount,
                    interest=amount,
                    penalty_fees=amount,
                    installment_amount=amount,
                    days_past_due=3,
                )
            )
        await session.commit()
    async with db.session() as session:
        accounts = (await session.execute(sa.select(Account).order_by(Account.id))).scalars().all()
    for account, amount in zip(accounts, AMOUNTS, strict=True):
        values = [
            account.outstanding_principal,
            account.overdue_principal,
            account.interest,
            account.penalty_fees,
            account.installment_amount,
        ]
        assert all(type(value) is Decimal for value in values)
        assert [str(value) for value in values] == [amount] * 5
    account = accounts[0]
    assert (account.currency, account.status, account.collections_hold) == (
        "CNY",
        "overdue",
        False,
    )
    assert (account.missed_installments, account.broken_plans) == (0, 0)


def test_money_refuses_floats_and_fractions_of_a_cent() -> None:
    assert to_money(Decimal("5")) == Decimal("5.00")
    assert str(to_money("12.3")) == "12.30"
    assert to_money(7) == Decimal("7.00")
    with pytest.raises(TypeError):
        to_money(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_money(Decimal("0.001"))
    for bad in ("abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            to_money(bad)


# --- audit log ---------------------------------------------------------------------------------


async def test_audit_entries_are_recorded_and_filtered(db: Database) -> None:
    await audit.record(db, "bot", "disclosure", "c1", 7, {"what": "summary"}, at=T0)
    await audit.record(db, "staff:li", "note", "c2", 7, {"amount": Decimal("12.50"), "at": T0})
    await audit.record(db, "system", "startup")
    all_entries = await audit.entries(db)
    assert [entry.action for entry in all_entries] == ["disclosure", "note", "startup"]
    first = all_entries[0]
    assert (first.actor, first.conversation_id, first.debtor_id) == ("bot", "c1", 7)
    assert first.created_at == T0
    assert dict(first.details) == {"what": "summary"}
    assert dict(all_entries[1].details) == {"amount": "12.50", "at": T0.isoformat()}
    assert [e.action for e in await audit.entries(db, conversation_id="c2")] == ["note"]
    assert len(await audit.entries(db, debtor_id=7)) == 2
    assert await audit.entries(db, conversation_id="c1", debtor_id=8) == []


async def test_audit_entries_join_the_callers_transaction(db: Database) -> None:
    async with db.session() as session:
        await audit.record(session, "bot", "kept")
        await session.commit()
    async with db.session() as session:
        await audit.record(session, "bot", "rolled_back")
        await session.rollback()
    assert [entry.action for entry in await audit.entries(db)] == ["kept"]


@pytest.mark.parametrize(
    ("actor", "action"),
    [("", "x"), ("robot", "x"), ("staff:", "x"), ("staff:a b", "x"), ("bot", ""), ("bot", "Drop")],
)
async def test_audit_refuses_unknown_actors_and_actions(actor: str, action: str) -> None:
    with pytest.raises(ValueError):
        await audit.record(Database("sqlite://"), actor, action)


async def test_database_rejects_update_and_delete_of_audit_entries(db: Database) -> None:
    await audit.record(db, "bot", "verification_failed", "c1", None, {"n": 1})
    statements = ["UPDATE audit_log SET actor = 'system'", "DELETE FROM audit_log"]
    if db.dialect == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with db.session() as session:
                await session.execute(sa.text(statement))
                await session.commit()
    [entry] = await audit.entries(db)
    assert (entry.actor, entry.action, dict(entry.details)) == (
        "bot",
        "verification_failed",
        {"n": 1},
    )


async def test_orm_refuses_to_change_or_delete_audit_entries(db: Database) -> None:
    await audit.record(db, "bot", "disclosure")
    async with db.session() as session:
        entry = (await session.execute(sa.select(AuditLog))).scalar_one()
        entry.actor = "system"
        with pytest.raises(AppendOnlyError):
            await session.flush()
    async with db.session() as session:
        entry = (await session.execute(sa.select(AuditLog))).scalar_one()
        await session.delete(entry)
        with pytest.raises(AppendOnlyError):
            await session.flush()
    assert [entry.actor for entry in await audit.entries(db)] == ["bot"]


def test_audit_module_offers_no_way_to_change_entries() -> None:
    public = {name for name in vars(audit) if not name.startswith("_")}
    assert {"record", "entries"} <= public
    assert not {name for name in public if name.startswith(("update", "delete", "remove"))}


# --- engine --------------------------------------------------------------------------------------


def test_database_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/bank")
    assert database_url() == "postgresql://u:p@db:5432/bank"
    monkeypatch.delenv("DATABASE_URL")
    default = database_url()
    assert default == f"sqlite+aiosqlite:///{engine_module.REPO_ROOT / 'var' / 'bank.db'}"
    assert (engine_module.REPO_ROOT / "var").is_dir()


@pytest.mark.parametrize(
    ("url", "asynchronous", "synchronous"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db", "sqlite:///var/x.db"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (
            "postgresql://u:p%40ss@h:5433/bank",
            "postgresql+asyncpg://u:p%40ss@h:5433/bank",
            "postgresql+psycopg2://u:p%40ss@h:5433/bank",
        ),
        (
            "postgresql+asyncpg://u@h/bank",
            "postgresql+asyncpg://u@h/bank",
            "postgresql+psycopg2://u@h/bank",
        ),
        ("postgres://u@h/bank", "postgresql+asyncpg://u@h/bank", "postgresql+psycopg2://u@h/bank"),
    ],
)
def test_urls_are_converted_between_drivers(url: str, asynchronous: str, synchronous: str) -> None:
    assert async_url(url) == asynchronous
    assert sync_url(url) == synchronous
    assert async_url(sync_url(url)) == asynchronous


@pytest.mark.parametrize("url", ["mysql://u@h/bank", "oracle://h/x", "not a url"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises((ValueError, sa.exc.ArgumentError)):
        async_url(url)


def test_libpq_options_become_asyncpg_server_settings() -> None:
    assert _server_settings("-csearch_path=bank") == {"search_path": "bank"}
    assert _server_settings("-c search_path=a -c statement-timeout=5s") == {
        "search_path": "a",
        "statement_timeout": "5s",
    }
    with pytest.raises(ValueError):
        _server_settings("--search_path")


async def test_engine_is_created_on_first_use_and_recreated_after_dispose(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lazy.db'}"
    database = Database(url)
    assert database._engine is None
    assert not (tmp_path / "lazy.db").exists()
    assert database.url.startswith("sqlite+aiosqlite://")
    async with database.session() as first, database.session() as second:
        assert first is not second
        assert (await first.execute(sa.text("SELECT 1"))).scalar_one() == 1
    assert database._engine is not None
    await database.dispose()
    assert database._engine is None
    async with database.session() as session:
        assert (await session.execute(sa.text("SELECT 2"))).scalar_one() == 2
    await database.dispose()
    await database.dispose()


def test_repr_hides_the_password() -> None:
    assert "secret" not in repr(Database("postgresql://u:secret@h/bank"))
