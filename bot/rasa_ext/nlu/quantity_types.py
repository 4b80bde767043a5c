"""A quantity found in a text, and its form as a Rasa entity."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Quantity:
    """One value found in a text, with the character span it came from.

    A range or an approximation ("四五千", "3000-4000", "一两年", "十来个月") has
    `value` at its low end and `high` at its high end; which one counts is the
    reader's rule (`bot.domain.circumstances.RANGE_END`).
    """

    entity: str
    value: Any
    start: int
    end: int
    text: str
    high: Any = None


def quantity_from_match(
    entity: str, low: Any, high: Any, match: re.Match[str], text: str
) -> Quantity:
    """The quantity of a regex match in `text`, without the match's trailing spaces."""
    end = match.end()
    while end > match.start() and text[end - 1].isspace():
        end -= 1
    return Quantity(entity, low, match.start(), end, text[match.start() : end], high)


def as_entities(quantities: Iterable[Quantity]) -> list[dict[str, Any]]:
    """Rasa entity dictionaries for `quantities` (JSON-safe values).

    An ``amount`` is a JSON integer for whole yuan and an exact decimal string
    ("1234.56") otherwise, never a binary float.
    """
    entities = []
    for q in quantities:
        value = q.value
        entity = {
            "entity": q.entity,
            "value": _json_safe(value),
            "start": q.start,
            "end": q.end,
            "confidence_entity": 1.0,
            "extractor": "QuantityExtractor",
        }
        if q.high is not None:
            entity["low"], entity["high"] = _json_safe(q.value), _json_safe(q.high)
        entities.append(entity)
    return entities


def _json_safe(value: Any) -> Any:
    """A whole `Decimal` as a JSON integer, any other as an exact string."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value
