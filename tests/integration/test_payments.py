"""Payments in from a CSV file, and the daily sweep, on SQLite and PostgreSQL.

The demo debtors are seeded with their account numbers; agreements are written
as the conversation records them (an agreement, its schedule, the hold).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.negotiation import assess
from bot.domain.policy import load_policy
from bot.domain.positions import Circumstances
from bot.store import audit
from bot.store.accounts import account_summaries
from bot.store.agreements import position
from bot.store.engine import REPO_ROOT, Database, sync_url
from bot.store.migrate import downgrade, upgrade
from bot.store.models import Account, HandoffCase
from bot.store.payment_import import PaymentFileError, import_file
from bot.store.seed import seed_demo
from bot.store.sweep import sweep
from tests.support.database import (
    BACKENDS,
    T0,
    cheap_hashing,
    copy_sqlite,
    migrated_url,
    seeded_sqlite,
    table_text,
)
from tests.support.payments import (
    ACCOUNT_NOS,
    account_of,
    add_agreement,
    agreement_row,
    allocated,
    installments,
    payment_references,
    payments_file,
    sweep_days,
)

ZHANG = ACCOUNT_NOS["张伟"]
LI = ACCOUNT_NOS["李娜"]
AGREED = date(2026, 11, 1)
SCHEDULE = [
    (date(2026, 11, 16), "1000.00"),
    (date(2026, 12, 16), "1000.00"),
    (date(2027, 1, 16), "999.99"),
]
GRACE = 3
IMPORT_DAY = date(2026, 12, 20)


def day(text: str) -> date:
    return date.fromisoformat(text)


# --- import ------------------------------------------------------------------------------


async def test_bad_rows_are_reported_by_line_and_the_good_ones_imported(
    db: Database, tmp_path: Path
) -> None:
    huge = "9" * 5000
    path = payments_file(
        tmp_path / "payments.csv",
        [
            f"{ZHANG},2026-11-15,1000.00,BK001",
            "6222999999999999,2026-11-15,10.00,BK002",
            f"{ZHANG},2026-11-15,-5.00,BK003",
            f"{ZHANG},2026-11-15,12.345,BK004",
            f"{ZHANG},2026-11-15,一百,BK005",
            f"{ZHANG},2026-12-21,10.00,BK006",
            "",
            f"{ZHANG},2026-11-15,1000.00,BK001",
            f"{ZHANG},2026-11-15,999.00,BK001",
            f"{ZHANG},2026-11-15,10.00",
            f"{ZHANG},2026-11-15,{huge},BK007",
            f"{ZHANG},2026-02-30,10.00,BK008",
            f"{LI},2026-12-01,3200,BK009",
            f"{ZHANG},2026-11-15,1e3,BK010",
            f"{ZHANG},2026-11-15,NaN,BK011",
            f"{ZHANG},2026-11-15,0.00,BK012",
            f"{ZHANG},2026-11-15,10.00,<script>",
        ],
    )
    result = await import_file(db, path, IMPORT_DAY)
    errors = [(e.position, e.reference, e.code) for e in result.errors]
    assert errors == [
        (3, "BK002", "unknown_account"),
        (4, "BK003", "negative_amount"),
        (5, "BK004", "bad_amount"),
        (6, "BK005", "bad_amount"),
        (7, "BK006", "future_date"),
        (10, "BK001", "duplicate_reference"),
        (11, None, "bad_columns"),
        (12, None, "bad_columns"),
        (13, "BK008", "bad_date"),
        (15, "BK010", "bad_amount"),
        (16, "BK011", "bad_amount"),
        (17, "BK012", "negative_amount"),
        (18, None, "bad_reference"),
    ]
    assert (result.rows, result.imported, result.already_imported) == (16, 2, 1)
    assert await payment_references(db) == ["BK001", "BK009"]
    entries = [e for e in await audit.entries(db) if e.action == "payments_imported"]
    assert [(e.actor, e.details["imported"], e.details["rejected"]) for e in entries] == [
        ("system", 2, 13)
    ]
    assert entries[0].details["total"] == "4200.00"


async def test_the_same_file_twice_changes_nothing(db: Database, tmp_path: Path) -> None:
    path = payments_file(
        tmp_path / "payments.csv",
        [f"{ZHANG},2026-11-15,1000.00,BK001", f"{LI},2026-11-16,3200.50,BK002"],
    )
    first = await import_file(db, path, IMPORT_DAY)
    assert (first.imported, first.already_imported, first.errors) == (2, 0, [])
    before = await table_text(db)
    second = await import_file(db, path, IMPORT_DAY)
    assert (second.imported, second.already_imported, second.errors) == (0, 2, [])
    assert await table_text(db) == before


async def test_two_imports_of_one_file_at_once_store_each_payment_once(
    db: Database, tmp_path: Path
) -> None:
    rows = [f"{ZHANG},2026-11-{d:02d},10.00,BK{d:03d}" for d in range(1, 29)]
    path = payments_file(tmp_path / "payments.csv", rows)
    other = Database(db.url)
    try:
        results = await asyncio.gather(
            import_file(db, path, IMPORT_DAY), import_file(other, path, IMPORT_DAY)
        )
    finally:
        await other.dispose()
    assert sum(r.imported for r in results) == 28
    assert sum(r.already_imported for r in results) == 28
    assert all(r.errors == [] for r in results)
    assert len(await payment_references(db)) == 28


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b"account,date,amount,ref\n1,2,3,4\n", "the header must name exactly"),
        (b"account_no,paid_on,amount\n", "the header must name exactly"),
        (b"x" * 5000, "far too long"),
    ],
)
async def test_a_file_that_is_not_a_payments_file_imports_nothing(
    db: Database, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "payments.csv"
    path.write_bytes(content)
    with pytest.raises(PaymentFileError, match=message):
        await import_file(db, path, IMPORT_DAY)
    assert await payment_references(db) == []


async def test_a_file_from_excel_with_bom_crlf_and_other_column_order_is_read(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "payments.csv"
    path.write_bytes(
        "\ufeffreference,Amount,account_no,paid_on\r\n".encode()
        + f'BK001,"1,000.00",{ZHANG},2026-11-15\r\n'.encode()
        + f"BK002,1000,{ZHANG},2026-11-15\r\n".encode()
        + f"BK003,5.5,{ZHANG},2026-11-15\r\n".encode()
        + b"BK004,\xff\xfe,6222021001000001,2026-11-15\r\n"
    )
    result = await import_file(db, path, IMPORT_DAY)
    assert [(e.position, e.code) for e in result.errors] == [(2, "bad_amount"), (5, "bad_amount")]
    assert await payment_references(db) == ["BK002", "BK003"]


# --- the sweep ---------------------------------------------------------------------------


async def import_rows(db: Database, tmp_path: Path, rows: list[str], name: str = "p.csv") -> None:
    result = await import_file(db, payments_file(tmp_path / name, rows), IMPORT_DAY + timedelta(60))
    assert result.errors == []


async def test_payments_are_applied_in_due_date_order_then_the_plan_breaks(
    db: Database, tmp_path: Path
) -> None:
    agreement_id = await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    await import_rows(
        db,
        tmp_path,
        [f"{ZHANG},2026-11-14,600.00,BK001", f"{ZHANG},2026-11-16,700.00,BK002"],
    )
    counts = await sweep(db, day("2026-11-16"), GRACE)
    assert counts.to_dict() == {
        "date": "2026-11-16",
        "installments_paid": 1,
        "installments_late": 0,
        "agreements_broken": 0,
        "agreements_completed": 0,
        "promises_kept": 0,
        "promises_broken": 0,
        "reminders_queued": 0,
        "reminders_deferred": 0,
    }
    assert await installments(db, agreement_id) == [
        (Decimal("1000.00"), "paid"),
        (Decimal("300.00"), "due"),
        (Decimal("0.00"), "due"),
    ]
    assert await allocated(db, agreement_id) == [Decimal("1000.00"), Decimal("300.00"), 0]
    # Due on 12-16, short of 700.00: late the next day, still active within the grace days.
    late = await sweep(db, day("2026-12-17"), GRACE)
    assert (late.installments_late, late.agreements_broken) == (1, 0)
    assert (await agreement_row(db, agreement_id)).status == "active"
    assert (await sweep(db, day("2026-12-19"), GRACE)).agreements_broken == 0
    broken = await sweep(db, day("2026-12-20"), GRACE)
    assert broken.agreements_broken == 1
    row = await agreement_row(db, agreement_id)
    assert (row.status, row.ended_on) == ("broken", day("2026-12-20"))
    account = await account_of(db, "张伟")
    assert (account.broken_plans, account.collections_hold) == (1, False)
    ended = [e for e in await audit.entries(db) if e.action == "agreement_broken"]
    assert len(ended) == 1
    assert ended[0].conversation_id == "conversation-张伟"
    assert ended[0].debtor_id == account.debtor_id
    assert dict(ended[0].details) == {
        "reference": row.reference,
        "plan": "personalized_installment",
        "account_id": account.id,
        "paid": "1300.00",
        "total_payable": "2999.99",
        "broken_on": "2026-12-20",
        "installment": 2,
        "hold_lifted": True,
    }
    # A broken plan stays broken, and later sweeps leave it alone.
    await import_rows(db, tmp_path, [f"{ZHANG},2026-12-21,5000.00,BK003"], "late.csv")
    later = await sweep(db, day("2026-12-22"), GRACE)
    assert later.installments_paid == 0
    assert (await agreement_row(db, agreement_id)).status == "broken"
    assert (await account_of(db, "张伟")).broken_plans == 1


async def test_a_second_sweep_of_the_same_day_changes_nothing(db: Database, tmp_path: Path) -> None:
    await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    await import_rows(db, tmp_path, [f"{ZHANG},2026-11-14,1000.00,BK001"])
    first = await sweep(db, day("2026-12-20"), GRACE)
    assert first.agreements_broken == 1
    before = await table_text(db)
    second = await sweep(db, day("2026-12-20"), GRACE)
    assert second.to_dict() == {"date": "2026-12-20"} | {k: 0 for k in list(first.to_dict())[1:]}
    assert await table_text(db) == before
    assert await sweep_days(db) == [day("2026-12-20")]


async def test_a_dispute_keeps_the_hold_when_a_plan_breaks(db: Database, tmp_path: Path) -> None:
    agreement_id = await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    account = await account_of(db, "张伟")
    async with db.session() as session:
        session.add(
            HandoffCase(
                reference="RG20261201-000001",
                conversation_id="another",
                channel="rest",
                debtor_id=account.debtor_id,
                account_id=account.id,
                reason="dispute",
                priority=2,
                holds_collection=True,
                summary=json.dumps({"held_accounts": [account.id]}),
            )
        )
        await session.commit()
    assert (await sweep(db, day("2026-11-20"), GRACE)).agreements_broken == 1
    assert (await agreement_row(db, agreement_id)).status == "broken"
    account = await account_of(db, "张伟")
    assert (account.broken_plans, account.collections_hold) == (1, True)
    ended = [e for e in await audit.entries(db) if e.action == "agreement_broken"]
    assert ended[0].details["hold_lifted"] is False


async def test_a_plan_paid_in_full_is_completed_and_a_promise_kept_or_broken(
    db: Database, tmp_path: Path
) -> None:
    plan = await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    kept = await add_agreement(
        db, "李娜", [(day("2026-11-30"), "3296.00")], plan="promise_to_pay", agreed_on=AGREED
    )
    broken = await add_agreement(
        db, "刘洋", [(day("2026-11-20"), "1522.50")], plan="promise_to_pay", agreed_on=AGREED
    )
    await import_rows(
        db,
        tmp_path,
        [
            f"{ZHANG},2026-11-10,2999.99,BK001",
            f"{LI},2026-11-29,3000.00,BK002",
            f"{LI},2026-11-30,296.00,BK003",
            f"{ACCOUNT_NOS['刘洋']},2026-11-20,1522.49,BK004",
        ],
    )
    counts = await sweep(db, day("2026-11-24"), GRACE)
    assert (counts.agreements_completed, counts.promises_kept, counts.promises_broken) == (1, 0, 1)
    assert (await agreement_row(db, plan)).status == "completed"
    assert (await agreement_row(db, broken)).status == "broken"
    assert (await account_of(db, "刘洋")).broken_plans == 1
    # The plan's hold stays while nothing lifts it: a completed plan is not a breach.
    assert (await account_of(db, "张伟")).collections_hold is True
    assert (await sweep(db, day("2026-12-01"), GRACE)).promises_kept == 1
    row = await agreement_row(db, kept)
    assert (row.status, row.ended_on) == ("completed", day("2026-12-01"))
    actions = [e.action for e in await audit.entries(db) if e.actor == "system"]
    assert actions.count("agreement_completed") == 1
    assert actions.count("promise_broken") == 1
    assert actions.count("promise_kept") == 1


async def test_a_payment_made_before_the_agreement_does_not_count(
    db: Database, tmp_path: Path
) -> None:
    agreement_id = await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    await import_rows(db, tmp_path, [f"{ZHANG},2026-10-31,1000.00,BK001"])
    assert (await sweep(db, day("2026-11-16"), GRACE)).installments_paid == 0
    assert (await installments(db, agreement_id))[0] == (Decimal("0.00"), "due")


async def test_two_sweeps_at_once_do_the_work_once(db: Database, tmp_path: Path) -> None:
    if db.dialect != "postgresql":
        pytest.skip("replicas share PostgreSQL")
    ids = [
        await add_agreement(db, name, SCHEDULE, agreed_on=AGREED)
        for name in ("张伟", "李娜", "陈静")
    ]
    await import_rows(
        db,
        tmp_path,
        [
            f"{ACCOUNT_NOS[n]},2026-11-15,1500.00,BK-{ACCOUNT_NOS[n]}"
            for n in ("张伟", "李娜", "陈静")
        ],
    )
    replicas = [Database(db.url) for _ in range(3)]
    try:
        runs = await asyncio.gather(*(sweep(r, day("2026-12-20"), GRACE) for r in replicas))
    finally:
        for replica in replicas:
            await replica.dispose()
    assert sum(r.installments_paid for r in runs) == 3
    assert sum(r.agreements_broken for r in runs) == 3
    assert sorted(r.agreements_broken for r in runs) == [0, 0, 3]
    for agreement_id in ids:
        assert await allocated(db, agreement_id) == [Decimal("1000.00"), Decimal("500.00"), 0]
    async with db.session() as session:
        plans = (
            await session.execute(sa.select(Account.broken_plans).order_by(Account.id))
        ).scalars()
        assert list(plans) == [1, 1, 2, 0, 1]


# --- the command line --------------------------------------------------------------------


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "bot.store.payments", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_line_imports_the_sample_file_and_sweeps(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the command line is the same on both")
    await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
    sample = REPO_ROOT / "data" / "payments" / "sample.csv"
    first = run(db.url, "import", str(sample), "--today", "2027-02-01")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["rejected"] == 0 and result["imported"] > 0
    again = json.loads(run(db.url, "import", str(sample), "--today", "2027-02-01").stdout)
    assert (again["imported"], again["already_imported"]) == (0, result["imported"])
    swept = run(db.url, "sweep", "--today", "2026-11-16")
    assert swept.returncode == 0, swept.stderr
    line = json.loads(swept.stdout)
    assert list(line) == [
        "date",
        "installments_paid",
        "installments_late",
        "agreements_broken",
        "agreements_completed",
        "promises_kept",
        "promises_broken",
        "reminders_queued",
        "reminders_deferred",
    ]
    assert swept.stdout.count("\n") == 1


async def test_the_command_line_answers_bad_input_clearly(db: Database, tmp_path: Path) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the command line is the same on both")
    bad_rows = payments_file(tmp_path / "bad.csv", [f"{ZHANG},2026-11-15,abc,BK001"])
    rejected = run(db.url, "import", str(bad_rows), "--today", "2026-12-01")
    assert rejected.returncode == 1
    assert json.loads(rejected.stdout)["errors"] == [
        {
            "line": 2,
            "reference": "BK001",
            "error": "bad_amount",
            "message": "amount must be a decimal number like 1234.50 (at most 2 decimals)",
        }
    ]
    missing = run(db.url, "import", str(tmp_path / "absent.csv"))
    assert missing.returncode == 2
    assert "nothing was imported" in missing.stderr
    bad_day = run(db.url, "sweep", "--today", "2026-13-01")
    assert bad_day.returncode == 2
    assert "not a date" in bad_day.stderr
    unmigrated = run(f"sqlite:///{tmp_path / 'empty.db'}", "sweep")
    assert unmigrated.returncode == 1
    assert "python -m bot.store upgrade" in unmigrated.stderr


# --- the property, through the database ----------------------------------------------------


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with cheap_hashing():
        return seeded_sqlite(tmp_path_factory.mktemp("template") / "bank.db")


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cents=st.lists(st.integers(min_value=1, max_value=150_000), min_size=1, max_size=6),
    days=st.lists(st.integers(min_value=0, max_value=80), min_size=6, max_size=6),
    offsets=st.lists(st.integers(min_value=10, max_value=90), min_size=1, max_size=4),
    data=st.data(),
)
def test_imported_in_any_order_and_split_each_installment_is_paid_what_was_allocated(
    seeded_template: Path,
    tmp_path: Path,
    cents: list[int],
    days: list[int],
    offsets: list[int],
    data: st.DataObject,
) -> None:
    rows = []
    for n, amount in enumerate(cents):
        paid_on = AGREED + timedelta(days=days[n])
        parts = data.draw(st.integers(min_value=1, max_value=min(3, amount)))
        share = amount // parts
        for part in range(parts):
            value = share if part < parts - 1 else amount - share * (parts - 1)
            rows.append(f"{ZHANG},{paid_on},{Decimal(value) / 100},BK{n:02d}-{part}")
    rows = data.draw(st.permutations(rows))
    url = copy_sqlite(seeded_template, tmp_path / f"bank-{uuid.uuid4().hex[:8]}.db")

    async def scenario() -> tuple[list[tuple[Decimal, str]], list[Decimal]]:
        db = Database(url)
        try:
            agreement_id = await add_agreement(db, "张伟", SCHEDULE, agreed_on=AGREED)
            path = payments_file(tmp_path / f"{uuid.uuid4().hex[:8]}.csv", rows)
            assert (await import_file(db, path, date(2027, 6, 1))).errors == []
            for offset in sorted(set(offsets)):
                await sweep(db, AGREED + timedelta(days=offset), GRACE)
            return await installments(db, agreement_id), await allocated(db, agreement_id)
        finally:
            await db.dispose()

    states, sums = asyncio.run(scenario())
    for (paid, _status), applied, (_due, amount) in zip(states, sums, SCHEDULE, strict=True):
        assert paid == applied
        assert Decimal(0) <= paid <= Decimal(amount)


# --- the schema ----------------------------------------------------------------------------


async def test_demo_accounts_get_their_numbers_even_if_seeded_before(db: Database) -> None:
    async with db.session() as session:
        await session.execute(sa.update(Account).values(account_no=None))
        await session.commit()
    assert await seed_demo(db) == 0
    async with db.session() as session:
        numbers = await session.execute(
            sa.select(Account.account_no).order_by(Account.__table__.c.id)
        )
        assert list(numbers.scalars()) == list(ACCOUNT_NOS.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_keeps_existing_agreements_unpaid_and_active(
    backend: str, tmp_path: Path
) -> None:
    with migrated_url(backend, tmp_path) as url:
        downgrade(url, "0005")
        engine = sa.create_engine(sync_url(url), future=True)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO debtors (id, full_name, national_id_hash, national_id_last4,"
                        " mobile, created_at) VALUES (1, '赵六', 'x', '1234', '13312345678', :t)"
                    ),
                    {"t": T0},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO accounts (id, debtor_id, product, currency,"
                        " outstanding_principal, overdue_principal, interest, penalty_fees,"
                        " days_past_due, created_at) VALUES (1, 1, 'credit_card', 'CNY', 100, 100,"
                        " 0, 0, 30, :t)"
                    ),
                    {"t": T0},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO agreements (id, reference, offer_id, conversation_id,"
                        " debtor_id, account_id, plan, currency, monthly_amount, months,"
                        " total_payable, amount_waived, first_due, last_due, terms, created_at)"
                        " VALUES (1, 'XS1', 'o1', 'c1', 1, 1, 'promise_to_pay', 'CNY', 100, 1,"
                        " 100, 0, '2026-01-10', '2026-01-10', '{}', :t)"
                    ),
                    {"t": T0},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO agreement_installments (agreement_id, number, due_date,"
                        " amount) VALUES (1, 1, '2026-01-10', 100)"
                    )
                )
            upgrade(url)
            with engine.connect() as connection:
                agreement = connection.execute(
                    sa.text("SELECT status, ended_on FROM agreements")
                ).one()
                installment = connection.execute(
                    sa.text("SELECT paid_amount, status FROM agreement_installments")
                ).one()
                account_no = connection.execute(sa.text("SELECT account_no FROM accounts")).scalar()
            assert tuple(agreement) == ("active", None)
            assert (Decimal(str(installment[0])), installment[1]) == (Decimal(0), "due")
            assert account_no is None
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(sa.text("UPDATE agreement_installments SET paid_amount = 101"))
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(sa.text("UPDATE agreements SET status = 'kept'"))
        finally:
            engine.dispose()


async def test_the_readme_demo_ends_as_the_readme_says(db: Database) -> None:
    """张伟's plan and 刘洋's promise of early December 2026, the sample file, three sweeps."""
    agreed = date(2026, 12, 3)
    account = await account_of(db, "张伟")
    circumstances = Circumstances(
        monthly_income=Decimal("8000"),
        monthly_expenses=Decimal("4000"),
        hardship_reason="income_drop",
        hardship_months=6,
        proposed_monthly=Decimal("2000"),
    )
    (summary,) = await account_summaries(db, account.debtor_id)
    offers = assess(position(summary), circumstances, agreed, load_policy()).offers
    assert [(o.plan, o.monthly_amount) for o in offers] == [
        ("personalized_installment", Decimal("1963.34"))
    ]
    schedule = [(i.due_date, str(i.amount)) for i in offers[0].schedule]
    plan = await add_agreement(db, "张伟", schedule, agreed_on=agreed)
    promise = await add_agreement(
        db, "刘洋", [(date(2026, 12, 31), "3045.00")], plan="promise_to_pay", agreed_on=agreed
    )
    sample = REPO_ROOT / "data" / "payments" / "sample.csv"
    assert (await import_file(db, sample, date(2027, 1, 31))).errors == []
    first = await sweep(db, date(2026, 12, 19), GRACE)
    # The promise's payment and 张伟's first installment.
    assert (first.promises_kept, first.installments_paid) == (1, 2)
    assert (await agreement_row(db, promise)).status == "completed"
    assert (await sweep(db, date(2027, 1, 19), GRACE)).installments_paid == 1
    last = await sweep(db, date(2027, 3, 5), GRACE)
    assert last.agreements_broken == 1
    assert (await agreement_row(db, plan)).status == "broken"
    zhang = await account_of(db, "张伟")
    assert (zhang.broken_plans, zhang.collections_hold) == (1, False)
