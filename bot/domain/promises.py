"""A debtor's promise said in parts: "下周五先还两千，剩下的月底前还清".

The NLU finds the dates and amounts; this module pairs them clause by clause
into the parts the engine checks (`bot.domain.negotiation.check_promise_in_parts`).
Each clause holds one date and at most one amount; a clause with a date and
words for "the rest" but no amount is the rest. Anything less clear (two dates
in one clause, an amount with no date) is not split: the promise is then read
as one payment, as before, and its terms are shown for confirmation anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from bot.domain.circumstances import as_money
from bot.domain.negotiation import PromisePart

_CLAUSE_BREAK = re.compile(r"[，,。；;！!？?\n、\s]+|然后|之后")
_THE_REST = re.compile(r"剩下|剩余|其余|余下|余款|尾款|全部|还清|结清|都还")


def _clauses(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the clauses of `text`."""
    spans, start = [], 0
    for match in _CLAUSE_BREAK.finditer(text):
        if match.start() > start:
            spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _amount(value: Any) -> Decimal | None:
    amount = as_money(value)
    return amount if amount is not None and amount > 0 else None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def promise_parts(text: str, entities: Iterable[Mapping[str, Any]]) -> list[PromisePart] | None:
    """The parts of a promise in two or more payments, or None if it is not one."""
    found: list[tuple[int, str, Any]] = []
    for entity in entities:
        kind = entity.get("entity")
        value: date | Decimal | None = None
        if kind == "date":
            value = _day(entity.get("value"))
        elif kind == "amount":
            value = _amount(entity.get("value"))
        if value is None:
            continue
        try:
            found.append((int(entity["start"]), str(kind), value))
        except (KeyError, TypeError, ValueError):
            continue
    if sum(1 for _, kind, _ in found if kind == "date") < 2:
        return None
    parts: list[PromisePart] = []
    for start, end in _clauses(text or ""):
        dates = [v for at, kind, v in found if start <= at < end and kind == "date"]
        amounts = [v for at, kind, v in found if start <= at < end and kind == "amount"]
        if len(dates) > 1 or len(amounts) > 1 or (amounts and not dates):
            return None
        if not dates:
            continue
        if amounts:
            parts.append((amounts[0], dates[0]))
        elif _THE_REST.search(text[start:end]):
            parts.append((None, dates[0]))
        else:
            return None
    return parts if len(parts) >= 2 else None
