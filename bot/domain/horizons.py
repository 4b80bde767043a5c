"""How long a hardship lasts, said as the time it ends: "过完年", "下个月就好了", "年底".

Debtors rarely answer "how long will it last" with a number of months; they name
when it ends. `months_until` turns such a horizon into whole months from today
(Beijing date), at least one: "下个月" is one, "年底" in September three, "过完年"
the months to the Spring Festival (February), "明年三月" the months to March of
next year. Simplified, Traditional and Cantonese forms are read.
"""

from __future__ import annotations

import re
from datetime import date

import cn2an

_MONTH = r"(1[0-2]|[1-9]|十[一二]|十|[一二两兩三四五六七八九])\s*(?:月份|月)"
_NEXT_YEAR = r"(?:明年|出年|下一年|來年|来年)"

#: (pattern, what the horizon is): checked in order, the first that matches counts.
_HORIZONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_NEXT_YEAR + r"\s*(?:的)?\s*" + _MONTH), "next_year_month"),
    (re.compile(_NEXT_YEAR + r"(?:年中|年中间|上半年|夏天|夏季)"), "next_year_middle"),
    (re.compile(_NEXT_YEAR + r"(?:年底|年末|年尾|下半年)"), "next_year_end"),
    (re.compile(r"下下(?:个|個)?月"), "month_after_next"),
    (re.compile(r"下(?:个|個)?月"), "next_month"),
    (
        re.compile(
            r"过完年|過完年|过了年|過了年|过年(?:以后|之后|后)|過年(?:以後|之後|後)|"
            r"(?<![0-9一二两兩三四五六七八九十几幾半])(?:年后|年後)|"
            r"春节(?:以后|之后|后|过后)|春節(?:以後|之後|後|過後)|过完春节|過完春節|开春|開春|"
            r"过咗年|過咗年|开年|開年"
        ),
        "spring_festival",
    ),
    (re.compile(r"(?:今年)?(?:年底|年末|年尾)"), "year_end"),
    (re.compile(r"(?:今年)?下半年"), "second_half"),
    (re.compile(_NEXT_YEAR + r"(?:年初|初|开年|開年)?"), "next_year"),
    (re.compile(r"(?:到|等到|要到|直到|等)\s*" + _MONTH), "month"),
    (re.compile(_MONTH + r"\s*(?:以后|之后|后|以後|之後|後|就|才|应该|應該)"), "month"),
    (
        re.compile(
            r"这个月|這個月|呢个月|呢個月|本月|月底|月尾|下周|下週|下礼拜|下禮拜|下个礼拜|下個禮拜|"
            r"过几天|過幾天|这几天|這幾天|过两天|過兩天|过阵子|過陣子|很快"
        ),
        "within_a_month",
    ),
]

#: Words saying a figure is how long it has lasted, not when it ends ("下岗到现在").
_PAST = re.compile(r"到现在|到現在|至今|已经|已經")


def _month_number(text: str) -> int | None:
    """A month's number from "3", "三", "十二" (cn2an), or None outside 1 to 12."""
    try:
        value = int(cn2an.cn2an(text, "smart"))
    except ValueError:
        return None
    return value if 1 <= value <= 12 else None


def _months_between(today: date, year: int, month: int) -> int:
    return max(1, (year - today.year) * 12 + month - today.month)


def _next_occurrence(today: date, month: int) -> int:
    """Months to the next `month` (this year's if still ahead, else next year's)."""
    year = today.year if month > today.month else today.year + 1
    return _months_between(today, year, month)


def months_until(text: str, today: date) -> int | None:
    """Whole months from `today` to the horizon the text names, or None if it names none."""
    if not text or _PAST.search(text):
        return None
    compact = re.sub(r"\s+", "", text)
    for pattern, kind in _HORIZONS:
        match = pattern.search(compact)
        if match is None:
            continue
        if kind == "next_year_month":
            month = _month_number(match.group(1))
            return None if month is None else _months_between(today, today.year + 1, month)
        if kind == "next_year_middle":
            return _months_between(today, today.year + 1, 6)
        if kind == "next_year_end":
            return _months_between(today, today.year + 1, 12)
        if kind == "month_after_next":
            return 2
        if kind == "next_month":
            return 1
        if kind == "spring_festival":
            return _next_occurrence(today, 2) if today.month != 2 else 1
        if kind == "year_end":
            return _months_between(today, today.year, 12)
        if kind == "second_half":
            return _months_between(today, today.year, 7) if today.month < 7 else None
        if kind == "next_year":
            return _months_between(today, today.year + 1, 1)
        if kind == "month":
            month = _month_number(match.group(1))
            return None if month is None else _next_occurrence(today, month)
        return 1
    return None


#: A horizon counts outside the duration question only when the text says the
#: hardship ends then ("过完年应该能找到工作", "明年三月能复工"); a bare "就好了"
#: ("下个月还就好了吧") may speak of paying, so it counts only as that answer.
RECOVERY = re.compile(
    r"好转|好轉|恢复|恢復|找到工作|找到新工作|重新上班|开工|開工|复工|復工|"
    r"出院|缓过来|緩過來|翻身"
)
