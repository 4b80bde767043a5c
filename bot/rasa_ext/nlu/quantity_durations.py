"""Durations and terms in months: "半年", "两年", "36期", "三四个月", "十来个月"."""

from __future__ import annotations

import re

from bot.rasa_ext.nlu.quantity_numbers import (
    NOT_BEFORE,
    NUMERAL_CHARS,
    adjacent_digits,
    digit_value,
    parse_number,
)
from bot.rasa_ext.nlu.quantity_types import Quantity, quantity_from_match

#: "三四个月", "一两年".
_ADJACENT_MONTHS = re.compile(
    NOT_BEFORE + r"([一二两三四五六七八九])([二两三四五六七八九])(个月|個月|年)"
)
#: "十来个月", "十几个月": about ten.
_ABOUT_TEN_MONTHS = re.compile(NOT_BEFORE + r"十(来|几)(个月|個月)")


def parse_months(text: str) -> int | None:
    """Parse a duration or term in months ("半年" 6, "两年" 24, "36期" 36)."""
    compact = text.replace(" ", "")
    if compact in {"半年", "大半年"}:
        return 6
    years = re.fullmatch(f"([{NUMERAL_CHARS}]+)年(半?)", compact)
    if years:
        number = parse_number(years.group(1))
        if number is None:
            return None
        months = number * 12 + (6 if years.group(2) else 0)
        return int(months) if months == int(months) and 0 < months <= 1200 else None
    plain = re.fullmatch(f"([{NUMERAL_CHARS}]+)(个月|個月|个|期)月?", compact)
    if plain:
        number = parse_number(plain.group(1))
        if number is None or number != int(number) or not 0 < number <= 1200:
            return None
        return int(number)
    return None


def month_approximations(text: str) -> list[Quantity]:
    """Approximate durations ("三四个月", "一两年", "十来个月"), from the low to the high end."""
    found: list[Quantity] = []
    lowered = text.lower()
    for match in _ADJACENT_MONTHS.finditer(lowered):
        if adjacent_digits(match.group(1), match.group(2)):
            factor = 12 if match.group(3) == "年" else 1
            shortest = digit_value(match.group(1)) * factor
            longest = digit_value(match.group(2)) * factor
            found.append(quantity_from_match("months", shortest, longest, match, text))
    for match in _ABOUT_TEN_MONTHS.finditer(lowered):
        found.append(
            quantity_from_match("months", 10, 12 if match.group(1) == "来" else 19, match, text)
        )
    return found
