"""Schedules of installments, and the offers built on them.

A schedule always sums exactly to the offer's total: the total is split into
whole cents and the remainder cents go to the first installments, so no
installment exceeds the offer's monthly amount.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import ROUND_CEILING, Decimal
from typing import Any

from bot.domain.money import CENT, ZERO, cents_up
from bot.domain.offers import Installment, Offer
from bot.domain.positions import AccountPosition


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day if it has fewer days."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split_evenly(total: Decimal, count: int) -> list[Decimal]:
    """`total` in `count` amounts that differ by at most a cent and sum to it exactly."""
    if count < 1:
        raise ValueError("count must be at least 1")
    total_cents = int((total / CENT).to_integral_value())
    base, extra = divmod(total_cents, count)
    return [(Decimal(base + (1 if i < extra else 0)) * CENT) for i in range(count)]


def monthly_schedule(total: Decimal, count: int, first_due: date) -> tuple[Installment, ...]:
    """`total` in `count` monthly installments, the first due on `first_due`."""
    return tuple(
        Installment(i + 1, add_months(first_due, i), amount)
        for i, amount in enumerate(split_evenly(total, count))
    )


def build_offer(
    plan: str,
    account: AccountPosition,
    total: Decimal,
    months: int,
    first_due: date,
    waived: Decimal,
    **extra: Any,
) -> Offer:
    """The offer of `plan` paying `total` in (at most) `months` monthly installments."""
    total = total.quantize(CENT)
    # Never more installments than cents owed: no installment is ever 0.00.
    months = max(1, min(months, int(total / CENT)))
    schedule = monthly_schedule(total, months, first_due)
    return Offer(
        plan=plan,
        account_id=account.account_id,
        currency=account.currency,
        monthly_amount=max(item.amount for item in schedule),
        months=months,
        first_due=schedule[0].due_date,
        last_due=schedule[-1].due_date,
        total_payable=total,
        amount_waived=waived,
        schedule=schedule,
        **extra,
    )


def shortest_term(total: Decimal, monthly_limit: Decimal, min_months: int = 1) -> int:
    """The fewest months (at least `min_months`) whose largest installment fits the limit."""
    if total <= ZERO:
        return min_months
    if monthly_limit <= ZERO:
        raise ValueError("no term fits a limit of zero")
    months = max(min_months, int((total / monthly_limit).to_integral_value(ROUND_CEILING)))
    while cents_up(total / months) > monthly_limit:
        months += 1
    return months
