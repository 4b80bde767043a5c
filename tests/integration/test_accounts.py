"""Account summaries of the demo debtors and disclosure records (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
import sqlalchemy as sa

from bot.store import audit
from bot.store.accounts import AccountSummary, account_summaries, record_disclosure
from bot.store.engine import Database
from bot.store.models import Account, Debtor

D = Decimal
#: mobile -> (product, outstanding, overdue principal, interest, fees, overdue total,
#:            days past due, missed installments, installment, broken plans)
EXPECTED = {
    "13800138000": ("credit_card", D("20000.00"), D("20000.00"), D("2860.00"), D("700.00"),
                    D("23560.00"), 45, 0, None, 0),
    "13900139001": ("consumer_loan", D("80000.00"), D("6400.00"), D("0.00"), D("192.00"),
                    D("6592.00"), 62, 2, D("3200.00"), 0),
    "13700137002": ("credit_card", D("150000.00"), D("150000.00"), D("31500.00"), D("4200.00"),
                    D("185700.00"), 210, 0, None, 2),
    "13600136003": ("credit_card", D("3000.00"), D("3000.00"), D("45.00"), D("0.00"),
                    D("3045.00"), 5, 0, None, 0),
    "13500135004": ("credit_card", D("48000.00"), D("48000.00"), D("6100.00"), D("1500.00"),
                    D("55600.00"), 95, 0, None, 0),
}  # fmt: skip


async def debtor_ids(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = (await session.execute(sa.select(Debtor.mobile, Debtor.id))).all()
    return dict(rows)


async def test_demo_summaries_are_exact(db: Database) -> None:
    ids = await debtor_ids(db)
    for mobile, expected in EXPECTED.items():
        [summary] = await account_summaries(db, ids[mobile])
        actual = (
            summary.product,
            summary.outstanding_principal,
            summary.overdue_principal,
            summary.interest,
            summary.penalty_fees,
            summary.overdue_total,
            summary.days_past_due,
            summary.missed_installments,
            summary.installment_amount,
            summary.broken_plans,
        )
        assert actual == expected
        assert [str(value) for value in actual if isinstance(value, Decimal)] == [
            str(value) for value in expected if isinstance(value, Decimal)
        ]
        money = [summary.outstanding_principal, summary.overdue_principal, summary.interest]
        money += [summary.penalty_fees, summary.overdue_total]
        assert all(type(value) is Decimal for value in money)
        assert (summary.currency, summary.status, summary.collections_hold) == (
            "CNY",
            "overdue",
            False,
        )


async def test_accounts_come_in_the_order_they_were_opened(db: Database) -> None:
    zhang = (await debtor_ids(db))["13800138000"]
    async with db.session() as session:
        session.add(
            Account(
                debtor_id=zhang,
                product="car_loan",
                outstanding_principal=D("60000.00"),
                overdue_principal=D("2500.50"),
                interest=D("10.25"),
                penalty_fees=D("37.51"),
                missed_installments=1,
                installment_amount=D("2500.50"),
                days_past_due=20,
                collections_hold=True,
                status="plan_agreed",
            )
        )
        await session.commit()
    card, car = await account_summaries(db, zhang)
    assert (card.product, car.product) == ("credit_card", "car_loan")
    assert car.account_id > card.account_id
    assert car.overdue_total == D("2548.26")
    assert (car.collections_hold, car.status) == (True, "plan_agreed")


async def test_unknown_debtor_has_no_accounts(db: Database) -> None:
    assert await account_summaries(db, 999_999) == []


def test_summaries_are_immutable() -> None:
    summary = AccountSummary(
        account_id=1,
        product="credit_card",
        currency="CNY",
        outstanding_principal=D("1.00"),
        overdue_principal=D("1.00"),
        interest=D("0.00"),
        penalty_fees=D("0.00"),
        overdue_total=D("1.00"),
        days_past_due=1,
        missed_installments=0,
        installment_amount=None,
        status="overdue",
        collections_hold=False,
        broken_plans=0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.interest = D("5.00")  # type: ignore[misc]


async def test_disclosures_are_audited(db: Database) -> None:
    zhang = (await debtor_ids(db))["13800138000"]
    await record_disclosure(db, "c1", zhang, "account_summary")
    [entry] = await audit.entries(db, debtor_id=zhang)
    assert (entry.actor, entry.action, entry.conversation_id) == ("bot", "disclosure", "c1")
    assert dict(entry.details) == {"what": "account_summary"}
    for what in ("", "x" * 201):
        with pytest.raises(ValueError):
            await record_disclosure(db, "c1", zhang, what)
    assert len(await audit.entries(db)) == 1
