"""What every action module shares: the database handle and money formatting."""

from __future__ import annotations

import functools
from decimal import Decimal

from bot.db.engine import Database, database_url


@functools.lru_cache(maxsize=1)
def database() -> Database:
    """The application database of this action server, created on first use."""
    return Database(database_url())


def money(amount: Decimal) -> str:
    """An amount of yuan as debtors read it: thousands separated, two decimals."""
    return f"{amount:,.2f}"
