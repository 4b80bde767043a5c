"""How the store writes values into JSON columns and makes reference numbers."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def json_default(value: object) -> str:
    """Decimals as exact strings, dates and times in ISO 8601; anything else refused."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Mapping[str, Any]) -> str:
    """Canonical JSON: keys sorted, Chinese kept as it is."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=json_default)


def reference(prefix: str, day: date) -> str:
    """A reference a debtor can read out: prefix, the day, six random hex digits."""
    return f"{prefix}{day:%Y%m%d}-{secrets.token_hex(3).upper()}"
