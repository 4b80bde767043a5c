"""How figures and dates read in the debtor's replies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from babel.dates import format_date

from bot.domain.negotiation import Installment


def money(amount: Decimal) -> str:
    """An amount of yuan as debtors read it: thousands separated, two decimals."""
    return f"{amount:,.2f}"


def full_date(day: date) -> str:
    """A date in full, with its weekday: `2026-12-31（星期四）`."""
    return f"{day.isoformat()}（{format_date(day, 'EEEE', locale='zh_CN')}）"


def schedule_lines(schedule: Iterable[Installment]) -> str:
    """One line per payment: number, date, amount (the layout of every schedule shown)."""
    return "\n".join(
        f"{item.number}. {full_date(item.due_date)}  {money(item.amount)}" for item in schedule
    )
