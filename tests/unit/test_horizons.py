"""When a hardship ends, said as a time rather than a number of months."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.horizons import months_until

DECEMBER = date(2026, 12, 3)
MARCH = date(2027, 3, 10)


@pytest.mark.parametrize(
    ("text", "in_december", "in_march"),
    [
        ("下个月就好了", 1, 1),
        ("下月应该可以", 1, 1),
        ("下下个月吧", 2, 2),
        ("过完年应该能找到工作", 2, 11),  # the Spring Festival falls in February
        ("春节以后", 2, 11),
        ("大概到年后", 2, 11),
        ("過完年就好", 2, 11),
        ("过咗年先", 2, 11),
        ("年底", 1, 9),
        ("年尾先得", 1, 9),
        ("等到明年", 1, 10),
        ("明年三月份", 3, 12),
        ("出年三月", 3, 12),
        ("估计要到明年夏天", 6, 15),
        ("到六月份", 6, 3),
        ("4月份以后", 4, 1),
        ("下半年应该好点", None, 4),
        ("过完这个月就好", 1, 1),
        ("下周就发工资了", 1, 1),  # shorter than a month still counts as one
        ("月底", 1, 1),
    ],
)
def test_a_horizon_is_the_months_until_it(
    text: str, in_december: int | None, in_march: int | None
) -> None:
    assert months_until(text, DECEMBER) == in_december
    assert months_until(text, MARCH) == in_march


@pytest.mark.parametrize(
    "text",
    [
        "",
        "不知道",
        "三年后",  # a duration, read as months elsewhere
        "我下岗到现在都没找到",  # how long it has lasted so far
        "年后到现在一直没活干",
        "我收入四千",
        "十三月",
    ],
)
def test_no_horizon_is_made_up(text: str) -> None:
    assert months_until(text, DECEMBER) is None
