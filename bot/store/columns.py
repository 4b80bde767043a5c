"""Column types of the bank tables: timezone-aware UTC times and exact money."""

from __future__ import annotations

import decimal
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: Money columns: up to 999,999,999,999.99.
MONEY_PRECISION, MONEY_SCALE = 14, 2
CENT = Decimal("0.01")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC timestamp; naive datetimes are refused.

    PostgreSQL stores `timestamptz`. SQLite has no time zones: values are stored
    as UTC and come back marked as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class _SQLiteDecimal(sa.Numeric):
    """NUMERIC on SQLite without SQLAlchemy's detour through Python floats."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class Money(sa.types.TypeDecorator):
    """An amount with exactly two decimals, as `Decimal`; floats are refused."""

    impl = sa.Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDecimal(MONEY_PRECISION, MONEY_SCALE))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        # SQLite gets the exact text; its NUMERIC affinity stores it as a number.
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            # SQLite hands back REAL; its shortest repr is the stored two-decimal text.
            value = repr(value)
        return Decimal(str(value)).quantize(CENT)


def to_money(value: Decimal | int | str) -> Decimal:
    """`value` as a two-decimal `Decimal`; floats and sub-cent amounts raise."""
    if isinstance(value, (float, bool)):
        raise TypeError("money must be Decimal, int or str, never float")
    try:
        amount = Decimal(value)
    except (decimal.InvalidOperation, TypeError, ValueError) as error:
        raise ValueError(f"not an amount: {value!r}") from error
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    quantized = amount.quantize(CENT)
    if quantized != amount:
        raise ValueError(f"amount has more than two decimals: {value!r}")
    return quantized
