"""The console's view of agreements, on SQLite and PostgreSQL: the case page's agreements
with installments and payments, and the supervisors' agreements due, late and broken.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bot.console.app import create_app
from bot.store import staff
from bot.store.engine import Database
from bot.store.models import AgreementInstallment
from bot.store.payment_models import Payment, PaymentAllocation
from tests.support.agreements import add_agreement, add_case, demo_account
from tests.support.staff import cheap_argon2
from tests.support.tracker_events import make_tracker_db

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
DAY = date(2026, 12, 10)


@pytest.fixture(autouse=True)
def _cheap_argon2() -> Iterator[None]:
    with cheap_argon2():
        yield


@dataclass
class Console:
    server: TestServer
    clients: list[TestClient] = field(default_factory=list)

    async def signed_in(self, username: str) -> TestClient:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        page = await (await client.get("/login")).text()
        match = CSRF_FIELD.search(page)
        assert match
        response = await client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": match.group(1)},
            allow_redirects=False,
        )
        assert response.status == 303
        return client


@pytest.fixture
async def console(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Console]:
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.setenv("TRACKER_DB", str(make_tracker_db(tmp_path / "tracker.db", [])))
    await staff.create_staff(db, "alice", "李专员", PASSWORD, "negotiator")
    await staff.create_staff(db, "sam", "张主管", PASSWORD, "supervisor")
    app = create_app(
        db, rasa_url="http://127.0.0.1:9", rasa_token="", secret_key=b"k" * 32, secure_cookies=False
    )
    server = TestServer(app)
    await server.start_server()
    state = Console(server)
    try:
        yield state
    finally:
        for client in state.clients:
            await client.close()
        await server.close()


@dataclass
class Plans:
    case_id: int
    active: int
    broken: int


@pytest.fixture
async def plans(db: Database) -> Plans:
    """张伟: an active plan, one installment late and partly paid; 李娜: a plan broken on `DAY`."""
    zhang, account = await demo_account(db, "13800138000")
    active = await add_agreement(
        db,
        zhang,
        account,
        [(date(2026, 11, 10), "500.00"), (DAY, "500.00"), (date(2027, 1, 10), "500.00")],
        conversation_id="rest:zhang",
    )
    async with db.session() as session:
        first = await session.scalar(
            sa.select(AgreementInstallment).where(
                AgreementInstallment.agreement_id == active, AgreementInstallment.number == 1
            )
        )
        assert first is not None
        first.paid_amount, first.status = Decimal("200.00"), "late"
        payment = Payment(
            reference="PAY-0001",
            account_id=account,
            paid_on=date(2026, 11, 12),
            amount=Decimal("200.00"),
            source="file",
        )
        session.add(payment)
        await session.flush()
        session.add(
            PaymentAllocation(
                payment_id=payment.id,
                installment_id=first.id,
                agreement_id=active,
                amount=Decimal("200.00"),
            )
        )
        await session.commit()
    li, li_account = await demo_account(db, "13900139001")
    broken = await add_agreement(
        db,
        li,
        li_account,
        [(date(2026, 11, 1), "300.00")],
        status="broken",
        ended_on=DAY,
        plan="promise_to_pay",
    )
    await add_case(db, zhang, "rest:zhang")
    async with db.session() as session:
        case_id = await session.scalar(sa.text("SELECT max(id) FROM handoff_cases"))
    return Plans(int(case_id), active, broken)


async def test_the_case_page_shows_the_debtors_agreements_installments_and_payments(
    console: Console, plans: Plans
) -> None:
    alice = await console.signed_in("alice")
    html = await (await alice.get(f"/cases/{plans.case_id}")).text()
    for text in ("还款协议", "执行中", "已逾期", "待还", "PAY-0001", "2026-11-12", "剩余 1300.00"):
        assert text in html, text
    data = await (await alice.get(f"/api/cases/{plans.case_id}/agreements")).json()
    (agreement,) = data["agreements"]
    assert (agreement["id"], agreement["status"], agreement["paid"], agreement["remaining"]) == (
        plans.active,
        "active",
        "200.00",
        "1300.00",
    )
    assert [(i["number"], i["paid_amount"], i["status"]) for i in agreement["installments"]] == [
        (1, "200.00", "late"),
        (2, "0.00", "due"),
        (3, "0.00", "due"),
    ]
    assert agreement["payments"] == [
        {"reference": "PAY-0001", "paid_on": "2026-11-12", "amount": "200.00", "applied": "200.00"}
    ]


async def test_supervisors_see_the_agreements_due_late_and_broken_of_a_day(
    console: Console, plans: Plans
) -> None:
    sam = await console.signed_in("sam")
    data = await (await sam.get(f"/api/agreements?date={DAY.isoformat()}")).json()
    assert data["date"] == "2026-12-10"
    assert [(i["agreement_id"], i["number"], i["amount"]) for i in data["due"]] == [
        (plans.active, 2, "500.00")
    ]
    assert [(i["agreement_id"], i["number"], i["paid_amount"]) for i in data["late"]] == [
        (plans.active, 1, "200.00")
    ]
    assert [(i["agreement_id"], i["plan"], i["ended_on"]) for i in data["broken"]] == [
        (plans.broken, "promise_to_pay", "2026-12-10")
    ]
    html = await (await sam.get(f"/agreements?date={DAY.isoformat()}")).text()
    for text in ("今日到期（1）", "已逾期未还（1）", "当日中止（1）", "承诺还款"):
        assert text in html, text
    other = await (await sam.get("/api/agreements?date=2026-12-11")).json()
    assert (len(other["due"]), len(other["late"]), len(other["broken"])) == (0, 1, 0)


async def test_negotiators_do_not_see_the_supervisors_list(console: Console, plans: Plans) -> None:
    alice = await console.signed_in("alice")
    assert (await alice.get("/agreements")).status == 403
    assert (await alice.get("/api/agreements")).status == 403


@pytest.mark.parametrize(
    "value", ["2026-13-01", "2026-12-1", "x" * 5000, "<script>", "2026-12-10T00:00", "０２６-12-10"]
)
async def test_a_bad_date_is_a_clear_400(console: Console, plans: Plans, value: str) -> None:
    sam = await console.signed_in("sam")
    response = await sam.get("/api/agreements", params={"date": value})
    assert response.status == 400
    assert (await response.json()) == {"error": "date 须为 YYYY-MM-DD 格式的日期"}
    page = await sam.get("/agreements", params={"date": value})
    assert page.status == 400
    assert "<script>" not in await page.text()


async def test_agreements_of_a_case_nobody_may_read_are_404(console: Console) -> None:
    alice = await console.signed_in("alice")
    assert (await alice.get("/api/cases/999999/agreements")).status == 404
