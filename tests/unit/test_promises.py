"""Promises in parts, paired clause by clause from the NLU's dates and amounts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bot.domain.promises import promise_parts
from bot.rasa_ext.nlu.quantities import QuantityParser, as_entities

TODAY = date(2026, 12, 3)  # a Thursday
PARSER = QuantityParser("data/nlu/jieba")


def parts(text: str) -> Any:
    return promise_parts(text, as_entities(PARSER.parse(text, TODAY)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "下周五先还两千 剩下的月底前还清",
            [(Decimal("2000"), date(2026, 12, 11)), (None, date(2026, 12, 31))],
        ),
        (
            "这周六还一千，下个月15号再还两千",
            [(Decimal("1000"), date(2026, 12, 5)), (Decimal("2000"), date(2027, 1, 15))],
        ),
        (
            "月底先还3000 剩余的下个月10号前",
            [(Decimal("3000"), date(2026, 12, 31)), (None, date(2027, 1, 10))],
        ),
        (
            "明天先还一千然后下周五把剩下的都还了",
            [(Decimal("1000"), date(2026, 12, 4)), (None, date(2026, 12, 11))],
        ),
    ],
)
def test_two_payments(text: str, expected: list) -> None:
    assert parts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "下周五先还两千",  # one payment
        "下周五或者月底还两千",  # two dates for one payment: not split
        "下周五还两千 月底",  # a second date with no amount and no "the rest"
        "我跟家里商量一下明天再来",
        "",
    ],
)
def test_not_a_promise_in_parts(text: str) -> None:
    assert parts(text) is None


def test_hostile_entities_are_ignored() -> None:
    entities = [
        {"entity": "date", "value": "not a date", "start": 0, "end": 3},
        {"entity": "date", "value": "2026-12-11", "start": "x", "end": 3},
        {"entity": "amount", "value": 1.5, "start": 4, "end": 6},
        {"entity": "amount", "value": "-20", "start": 4, "end": 6},
    ]
    assert promise_parts("下周五先还两千 剩下的月底前还清", entities) is None
