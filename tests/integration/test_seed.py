"""Demo and synthetic debtors, seeding and the command line (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.domain.vocabulary import PRODUCTS
from bot.store.__main__ import main
from bot.store.engine import Database
from bot.store.identity import (
    is_valid_national_id,
    national_id_matches,
    normalize_mobile,
    normalize_name,
)
from bot.store.models import Account, Debtor
from bot.store.seed import (
    DEMO_DEBTORS,
    DEMO_MOBILES,
    MAX_DAYS_PAST_DUE,
    REGION_CODES,
    seed_demo,
    seed_synthetic,
    synthetic_debtors,
)
from tests.support.database import BACKENDS, cheap_hashing, migrated_url, table_text

D = Decimal
#: name, national ID, mobile, product, outstanding principal, overdue principal, interest,
#: penalty and fees, days past due, missed installments, installment, broken plans
DEMO = [
    ("张伟", "110101199003071234", "13800138000", "credit_card", D("20000.00"), D("20000.00"),
     D("2860.00"), D("700.00"), 45, 0, None, 0),
    ("李娜", "310104198807155678", "13900139001", "consumer_loan", D("80000.00"), D("6400.00"),
     D("0.00"), D("192.00"), 62, 2, D("3200.00"), 0),
    ("王芳", "440106197512204321", "13700137002", "credit_card", D("150000.00"), D("150000.00"),
     D("31500.00"), D("4200.00"), 210, 0, None, 2),
    ("刘洋", "510105199512018765", "13600136003", "credit_card", D("3000.00"), D("3000.00"),
     D("45.00"), D("0.00"), 5, 0, None, 0),
    ("陈静", "330102198202140026", "13500135004", "credit_card", D("48000.00"), D("48000.00"),
     D("6100.00"), D("1500.00"), 95, 0, None, 0),
]  # fmt: skip
HASH = re.compile(r"scrypt\$[0-9a-f]{32}\$[0-9a-f]{64}")


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty migrated database; seeding hashes cheaply."""
    with migrated_url(request.param, tmp_path) as url, cheap_hashing():
        database = Database(url)
        yield database
        await database.dispose()


async def stored_demo(db: Database) -> list[tuple]:
    query = (
        sa.select(
            Debtor.full_name,
            Debtor.national_id_last4,
            Debtor.mobile,
            Account.product,
            Account.outstanding_principal,
            Account.overdue_principal,
            Account.interest,
            Account.penalty_fees,
            Account.days_past_due,
            Account.missed_installments,
            Account.installment_amount,
            Account.broken_plans,
        )
        .join(Account, Account.debtor_id == Debtor.id)
        .order_by(Debtor.id, Account.id)
    )
    async with db.session() as session:
        return [tuple(row) for row in (await session.execute(query)).all()]


def test_demo_debtors_are_exactly_the_five_people() -> None:
    flat = [
        (
            debtor.full_name,
            debtor.national_id,
            debtor.mobile,
            account.product,
            account.outstanding_principal,
            account.overdue_principal,
            account.interest,
            account.penalty_fees,
            account.days_past_due,
            account.missed_installments,
            account.installment_amount,
            account.broken_plans,
        )
        for debtor in DEMO_DEBTORS
        for account in debtor.accounts
    ]
    assert flat == DEMO
    assert [len(debtor.accounts) for debtor in DEMO_DEBTORS] == [1] * 5
    assert DEMO_MOBILES == {row[2] for row in DEMO}


async def test_seed_demo_stores_exact_amounts_once(db: Database) -> None:
    assert await seed_demo(db) == 5
    assert await seed_demo(db) == 0
    stored = await stored_demo(db)
    expected = [(name, nid[-4:], *rest) for name, nid, *rest in DEMO]
    assert stored == expected
    money = [value for row in stored for value in row if isinstance(value, Decimal)]
    assert [str(value) for value in money] == [
        str(value) for row in expected for value in row if isinstance(value, Decimal)
    ]
    assert all(type(value) is Decimal for value in money)


async def test_national_ids_are_stored_only_as_salted_hashes(db: Database) -> None:
    await seed_demo(db)
    await seed_synthetic(db, 5, seed=1)
    text = await table_text(db)
    for debtor in [*DEMO_DEBTORS, *synthetic_debtors(5, seed=1)]:
        assert debtor.national_id not in text
        assert debtor.national_id[:14] not in text  # nor the region and birth date
    async with db.session() as session:
        rows = (await session.execute(sa.select(Debtor).order_by(Debtor.id))).scalars().all()
    assert len({row.national_id_hash for row in rows}) == len(rows)
    for row, debtor in zip(rows, DEMO_DEBTORS, strict=False):
        assert HASH.fullmatch(row.national_id_hash)
        assert national_id_matches(row.national_id_hash, debtor.national_id)
        assert not national_id_matches(row.national_id_hash, "110101199003071235")
        assert row.national_id_last4 == debtor.national_id[-4:]


def test_synthetic_debtors_are_reproducible() -> None:
    first = synthetic_debtors(200, seed=42)
    assert first == synthetic_debtors(200, seed=42)
    assert first != synthetic_debtors(200, seed=43)
    assert synthetic_debtors(10, seed=42) == first[:10]
    assert synthetic_debtors(0, seed=1) == []
    with pytest.raises(ValueError):
        synthetic_debtors(-1, seed=1)


def test_synthetic_debtors_look_real() -> None:
    debtors = synthetic_debtors(500, seed=7)
    mobiles = [debtor.mobile for debtor in debtors]
    national_ids = [debtor.national_id for debtor in debtors]
    assert len(set(mobiles)) == len(mobiles) and not set(mobiles) & DEMO_MOBILES
    assert len(set(national_ids)) == len(national_ids)
    for debtor in debtors:
        assert normalize_name(debtor.full_name) == debtor.full_name
        assert 2 <= len(debtor.full_name) <= 4
        assert re.fullmatch(r"1[3-9][0-9]{9}", debtor.mobile)
        assert normalize_mobile(debtor.mobile) == debtor.mobile
        nid = debtor.national_id
        assert is_valid_national_id(nid)
        assert nid[:6] in REGION_CODES
        birthday = date(int(nid[6:10]), int(nid[10:12]), int(nid[12:14]))
        assert date(1960, 1, 1) <= birthday <= date(2004, 12, 31)
        assert 1 <= len(debtor.accounts) <= 2
        assert len({account.product for account in debtor.accounts}) == len(debtor.accounts)
        for account in debtor.accounts:
            assert account.product in PRODUCTS
            amounts = [
                account.outstanding_principal,
                account.overdue_principal,
                account.interest,
                account.penalty_fees,
            ]
            assert all(type(a) is Decimal and a == a.quantize(D("0.01")) for a in amounts)
            assert all(a >= 0 for a in amounts)
            assert D("0") < account.overdue_principal <= account.outstanding_principal
            assert account.outstanding_principal < D("3000000.01")
            assert 1 <= account.days_past_due <= MAX_DAYS_PAST_DUE
            assert 0 <= account.broken_plans <= 3
            if account.product == "credit_card":
                assert account.outstanding_principal == account.overdue_principal
                assert D("1000") <= account.overdue_principal <= D("200000")
                assert account.installment_amount is None
            else:
                assert account.installment_amount is not None
                assert account.missed_installments >= 1
                expected = account.installment_amount * account.missed_installments
                assert account.overdue_principal == expected
    products = {account.product for debtor in debtors for account in debtor.accounts}
    assert products == set(PRODUCTS)
    assert len({debtor.full_name for debtor in debtors}) > 100


async def test_seed_synthetic_is_idempotent_and_coexists_with_the_demo(db: Database) -> None:
    assert await seed_synthetic(db, 30, seed=5) == 30
    assert await seed_synthetic(db, 30, seed=5) == 0
    assert await seed_synthetic(db, 40, seed=5) == 10
    assert await seed_demo(db) == 5
    async with db.session() as session:
        count = (await session.execute(sa.select(sa.func.count(Debtor.id)))).scalar_one()
        accounts = (await session.execute(sa.select(sa.func.count(Account.id)))).scalar_one()
    assert count == 45
    expected = sum(len(d.accounts) for d in synthetic_debtors(40, seed=5)) + len(DEMO_DEBTORS)
    assert accounts == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_command_line(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with migrated_url(backend, tmp_path) as url, cheap_hashing():
        assert main(["--url", url, "upgrade"]) == 0
        assert main(["--url", url, "seed-demo"]) == 0
        assert main(["--url", url, "seed-demo"]) == 0
        assert main(["--url", url, "seed-synthetic", "--count", "3", "--seed", "9"]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "schema up to date",
            "5 debtors added",
            "0 debtors added",
            "3 debtors added",
        ]
        with pytest.raises(SystemExit):
            main(["--url", url, "seed-synthetic"])


def test_command_line_uses_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    with cheap_hashing():
        assert main(["seed-demo"]) == 0
    assert capsys.readouterr().out == "5 debtors added\n"
    assert path.exists()
