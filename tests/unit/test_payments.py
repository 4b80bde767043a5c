"""Payments against schedules (`bot.domain.payments`): rows checked, money applied, plans judged.

The property tests say what the bank relies on: however the payments arrive
and however a sum is split, each installment is paid exactly what was applied
to it and never more than its amount, and what the sweep decides depends only
on the payments and the day.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.payments import Due, Paid, RowError, Settlement, parse_amount, settle, validate_row
from bot.domain.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy

START = date(2026, 11, 1)
TODAY = date(2026, 12, 1)

amounts = st.integers(min_value=1, max_value=500_000).map(lambda cents: Decimal(cents) / 100)


@st.composite
def schedules(draw: st.DrawFn) -> list[Due]:
    count = draw(st.integers(min_value=1, max_value=6))
    gaps = draw(st.lists(st.integers(min_value=0, max_value=40), min_size=count, max_size=count))
    day, dues = START, []
    for number, gap in enumerate(gaps, start=1):
        day += timedelta(days=gap)
        dues.append(Due(number, day, draw(amounts)))
    return dues


@st.composite
def payment_lists(draw: st.DrawFn) -> list[Paid]:
    days = st.integers(min_value=0, max_value=200).map(lambda n: START + timedelta(days=n))
    found = draw(st.lists(st.tuples(days, amounts), max_size=8))
    return [Paid(f"P{index:03d}", day, amount) for index, (day, amount) in enumerate(found)]


def split(payments: list[Paid], data: st.DataObject) -> list[Paid]:
    """Each payment as up to four payments of the same day adding up to it."""
    parts = []
    for payment in payments:
        cents = int(payment.amount * 100)
        cuts = sorted(
            data.draw(st.sets(st.integers(min_value=1, max_value=cents - 1), max_size=3))
            if cents > 1
            else set()
        )
        bounds = [0, *cuts, cents]
        for n, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False)):
            parts.append(
                Paid(f"{payment.reference}-{n}", payment.paid_on, Decimal(high - low) / 100)
            )
    return data.draw(st.permutations(parts))


def outcome(result: Settlement) -> tuple[object, ...]:
    """What a settlement decides, without which payment funded what."""
    return (
        result.installments,
        result.state,
        result.broken_on,
        result.broken_by,
        result.completed_on,
    )


@settings(max_examples=300, deadline=None)
@given(
    schedule=schedules(),
    payments=payment_lists(),
    grace=st.integers(min_value=0, max_value=10),
    offset=st.integers(min_value=0, max_value=250),
    data=st.data(),
)
def test_any_order_and_any_split_pay_each_installment_exactly_what_was_applied(
    schedule: list[Due], payments: list[Paid], grace: int, offset: int, data: st.DataObject
) -> None:
    today = START + timedelta(days=offset)
    first = settle(schedule, payments, today, grace)
    again = settle(schedule, split(payments, data), today, grace)
    assert outcome(again) == outcome(first)
    for result in (first, again):
        applied: dict[int, Decimal] = defaultdict(Decimal)
        for _reference, number, amount in result.allocations:
            assert amount > 0
            applied[number] += amount
        for due, state in zip(schedule, result.installments, strict=True):
            assert state.paid_amount == applied[due.number]
            assert Decimal(0) <= state.paid_amount <= due.amount
            assert (state.status == "paid") == (state.paid_amount == due.amount)
        as_of = today if result.broken_on is None else result.broken_on
        made = sum((p.amount for p in payments if p.paid_on <= as_of), Decimal(0))
        total = sum((due.amount for due in schedule), Decimal(0))
        assert result.paid_total == min(made, total)
        assert (result.state == "completed") == (
            result.paid_total == total and result.broken_on is None
        )


@settings(max_examples=200, deadline=None)
@given(
    schedule=schedules(),
    payments=payment_lists(),
    grace=st.integers(min_value=0, max_value=10),
    days=st.integers(min_value=0, max_value=250),
)
def test_sweeping_every_day_or_once_gives_the_same_outcome(
    schedule: list[Due], payments: list[Paid], grace: int, days: int
) -> None:
    """A daily sweep stops at the first end; one sweep on the last day finds the same."""
    last = START + timedelta(days=days)
    daily = settle(schedule, payments, START, grace)
    day = START
    while daily.state == "active" and day < last:
        day += timedelta(days=1)
        daily = settle(schedule, payments, day, grace)
    once = settle(schedule, payments, last, grace)
    if daily.state == "completed":
        assert once.state == "completed"
        assert once.installments == daily.installments
    else:
        assert outcome(once) == outcome(daily)


def test_payments_fill_installments_in_due_date_order() -> None:
    schedule = [
        Due(2, date(2026, 12, 16), Decimal("500.00")),
        Due(1, date(2026, 11, 16), Decimal("500.00")),
    ]
    result = settle(schedule, [Paid("A", date(2026, 11, 10), Decimal("700.00"))], TODAY, 3)
    assert [(s.number, s.paid_amount, s.status) for s in result.installments] == [
        (1, Decimal("500.00"), "paid"),
        (2, Decimal("200.00"), "due"),
    ]
    assert result.allocations == (("A", 1, Decimal("500.00")), ("A", 2, Decimal("200.00")))
    assert result.state == "active"


def test_an_installment_short_past_its_grace_days_breaks_the_plan_even_if_paid_later() -> None:
    schedule = [
        Due(1, date(2026, 11, 16), Decimal("500.00")),
        Due(2, date(2026, 12, 16), Decimal("500.00")),
    ]
    payments = [
        Paid("A", date(2026, 11, 16), Decimal("499.99")),
        Paid("B", date(2026, 11, 21), Decimal("600.00")),
    ]
    assert settle(schedule, payments, date(2026, 11, 17), 3).installments[0].status == "late"
    assert settle(schedule, payments, date(2026, 11, 19), 3).state == "active"
    broken = settle(schedule, payments, date(2026, 11, 25), 3)
    assert (broken.state, broken.broken_on, broken.broken_by) == ("broken", date(2026, 11, 20), 1)
    # As it stood on the day it broke: the later payment is not applied.
    assert broken.paid_total == Decimal("499.99")
    on_time = [Paid("A", date(2026, 11, 19), Decimal("1000.00"))]
    done = settle(schedule, on_time, date(2026, 11, 20), 3)
    assert (done.state, done.completed_on) == ("completed", date(2026, 11, 19))


def test_a_surplus_is_not_applied() -> None:
    schedule = [Due(1, date(2026, 11, 16), Decimal("100.00"))]
    result = settle(schedule, [Paid("A", date(2026, 11, 1), Decimal("150.00"))], TODAY, 0)
    assert result.allocations == (("A", 1, Decimal("100.00")),)
    assert result.state == "completed"


def test_negative_grace_days_are_refused() -> None:
    with pytest.raises(ValueError, match="grace_days"):
        settle([], [], TODAY, -1)


# --- rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234.5", Decimal("1234.50")),
        (" 0.01 ", Decimal("0.01")),
        ("999999999999.99", Decimal("999999999999.99")),
        (3200, Decimal("3200.00")),
        (Decimal("12.3"), Decimal("12.30")),
        ("-5", "negative_amount"),
        ("0", "negative_amount"),
        ("0.00", "negative_amount"),
        ("12.345", "bad_amount"),
        ("1e3", "bad_amount"),
        ("1,000.00", "bad_amount"),
        ("NaN", "bad_amount"),
        ("Infinity", "bad_amount"),
        ("+5", "bad_amount"),
        ("１２", "bad_amount"),
        ("五十", "bad_amount"),
        ("", "bad_amount"),
        (12.5, "bad_amount"),
        (True, "bad_amount"),
        (None, "bad_amount"),
        (Decimal("NaN"), "bad_amount"),
        (Decimal("0.001"), "bad_amount"),
        ("1000000000000.00", "amount_too_large"),
        (10**13, "amount_too_large"),
        ("9" * 5000, "amount_too_large"),
    ],
)
def test_amounts_are_exact_decimals_with_at_most_two_places(
    value: object, expected: Decimal | str
) -> None:
    assert parse_amount(value) == expected


GOOD = {
    "account_no": "6222021001000001",
    "paid_on": "2026-11-30",
    "amount": "10",
    "reference": "R1",
}


@pytest.mark.parametrize(
    ("change", "code", "reference"),
    [
        ({"account_no": ""}, "missing_field", "R1"),
        ({"reference": None}, "missing_field", None),
        ({"reference": "<script>"}, "bad_reference", None),
        ({"reference": "R" * 65}, "bad_reference", None),
        ({"reference": "参考号"}, "bad_reference", None),
        ({"account_no": "62' OR 1=1"}, "bad_account_no", "R1"),
        ({"account_no": 6222021001000001}, "bad_account_no", "R1"),
        ({"paid_on": "2026-12-02"}, "future_date", "R1"),
        ({"paid_on": "30/11/2026"}, "bad_date", "R1"),
        ({"paid_on": "2026-11-31"}, "bad_date", "R1"),
        ({"paid_on": 20261130}, "bad_date", "R1"),
        ({"amount": "-1"}, "negative_amount", "R1"),
    ],
)
def test_a_bad_row_says_why(change: dict[str, object], code: str, reference: str | None) -> None:
    assert validate_row(7, GOOD | change, TODAY) == RowError(7, reference, code)


def test_a_good_row_is_read_exactly() -> None:
    row = validate_row(2, GOOD | {"paid_on": "2026-12-01", "amount": "0.10"}, TODAY)
    assert not isinstance(row, RowError)
    assert (row.account_no, row.paid_on, row.amount, row.reference) == (
        "6222021001000001",
        date(2026, 12, 1),
        Decimal("0.10"),
        "R1",
    )


# --- the policy ----------------------------------------------------------------------------


def test_the_bundled_policy_gives_grace_days() -> None:
    assert load_policy().lifecycle.grace_days == 3


@pytest.mark.parametrize("value", [-1, 61, "3", 1.5, None])
def test_a_bad_grace_days_value_is_refused_by_name(value: object) -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["lifecycle"]["grace_days"] = value
    with pytest.raises(PolicyError, match="lifecycle.grace_days"):
        parse_policy(data, "policy.yml")
