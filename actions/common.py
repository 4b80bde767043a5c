"""What every action module shares: the database handle, today, and how figures read."""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date

from bot.store.engine import Database, database_url

#: The bank's day starts and ends in Beijing time, wherever the server runs.
BEIJING = ZoneInfo("Asia/Shanghai")


@functools.lru_cache(maxsize=1)
def database() -> Database:
    """The application database of this action server, created on first use."""
    return Database(database_url())


def money(amount: Decimal) -> str:
    """An amount of yuan as debtors read it: thousands separated, two decimals."""
    return f"{amount:,.2f}"


def today_in_beijing() -> date:
    """Today's date in Beijing: the day plans and promises count from."""
    return datetime.now(BEIJING).date()


def full_date(day: date) -> str:
    """A date in full, with its weekday: `2026-12-31（星期四）`."""
    return f"{day.isoformat()}（{format_date(day, 'EEEE', locale='zh_CN')}）"
