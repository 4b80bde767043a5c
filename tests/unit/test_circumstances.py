"""Which figure is which, in the ways debtors actually write them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bot.domain.circumstances import (
    AVAILABLE_FUNDS,
    EXPENSES,
    HARDSHIP_MONTHS,
    HARDSHIP_REASON,
    INCOME,
    OTHER_REPAYMENTS,
    PROPOSED_MONTHLY,
    UNKNOWN,
    circumstances,
    extract,
    extract_with_ranges,
    hardship_from,
    implausible,
)
from bot.domain.negotiation import Circumstances
from bot.domain.policy import load_policy
from bot.rasa_ext.nlu.quantities import QuantityParser

TODAY = date(2026, 11, 28)
POLICY = load_policy()


@pytest.fixture(scope="module")
def parser() -> QuantityParser:
    return QuantityParser()


def entities(parser: QuantityParser, text: str) -> list[dict[str, Any]]:
    return [
        {"entity": q.entity, "value": q.value, "start": q.start, "end": q.end, "high": q.high}
        for q in parser.parse(text, TODAY)
    ]


@pytest.mark.parametrize(
    ("text", "asked", "expected"),
    [
        (
            "我失业三个月了，现在打零工一个月四千左右，房租加吃饭要两千五",
            None,
            {INCOME: "4000.00", EXPENSES: "2500.00"},
        ),
        ("说错了，收入是五千", EXPENSES, {INCOME: "5000.00"}),
        ("每个月只能还一千", None, {PROPOSED_MONTHLY: "1000.00"}),
        (
            "每月还花呗八百，大概半年能找到工作",
            OTHER_REPAYMENTS,
            {OTHER_REPAYMENTS: "800.00", HARDSHIP_MONTHS: "6"},
        ),
        ("家里能帮我凑1.5万", AVAILABLE_FUNDS, {AVAILABLE_FUNDS: "15000.00"}),
        ("工资从九千降到五千", None, {INCOME: "5000.00"}),
        ("没有", OTHER_REPAYMENTS, {OTHER_REPAYMENTS: "0.00"}),
        ("没有", AVAILABLE_FUNDS, {AVAILABLE_FUNDS: "0.00"}),
        ("不清楚，有几笔网贷", OTHER_REPAYMENTS, {}),
        ("不确定", PROPOSED_MONTHLY, {PROPOSED_MONTHLY: UNKNOWN}),
        ("说不准", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: UNKNOWN}),
        ("一年", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "12"}),
        ("五千", INCOME, {INCOME: "5000.00"}),
        ("3k", EXPENSES, {EXPENSES: "3000.00"}),
        ("没有收入", INCOME, {INCOME: "0.00"}),
        ("房租一千五，吃饭一千", EXPENSES, {EXPENSES: "2500.00"}),
        ("每月还花呗八百，网贷一千", None, {OTHER_REPAYMENTS: "1800.00"}),
        ("不是四千，是五千", INCOME, {INCOME: "5000.00"}),
        # Typed fast or by voice: spaces separate the clauses, "没有" comes last.
        (
            "四千 房租吃饭两千五 别的贷款没有",
            INCOME,
            {INCOME: "4000.00", EXPENSES: "2500.00", OTHER_REPAYMENTS: "0.00"},
        ),
        ("收入 五千 花呗每月还 八百", None, {INCOME: "5000.00", OTHER_REPAYMENTS: "800.00"}),
        (
            "工资降了，现在一个月八千，房租生活费两千，没有别的贷款，大概三个月后能恢复",
            None,
            {
                INCOME: "8000.00",
                EXPENSES: "2000.00",
                OTHER_REPAYMENTS: "0.00",
                HARDSHIP_MONTHS: "3",
            },
        ),
    ],
)
def test_figures_go_to_the_right_question(
    parser: QuantityParser, text: str, asked: str | None, expected: dict[str, str]
) -> None:
    assert extract(text, entities(parser, text), asked) == expected


@pytest.mark.parametrize(
    ("text", "asked", "expected", "ranged"),
    [
        ("一个月四五千吧", INCOME, {INCOME: "4000.00"}, {INCOME}),
        ("房租吃饭两三千块", EXPENSES, {EXPENSES: "3000.00"}, {EXPENSES}),
        ("收入3000-4000 开销两千左右", None, {INCOME: "3000.00", EXPENSES: "2000.00"}, {INCOME}),
        ("估计还要一两年", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "24"}, {HARDSHIP_MONTHS}),
        ("大概十来个月吧", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "12"}, {HARDSHIP_MONTHS}),
        ("每个月能还一两千", PROPOSED_MONTHLY, {PROPOSED_MONTHLY: "1000.00"}, {PROPOSED_MONTHLY}),
        ("工资1w2", INCOME, {INCOME: "12000.00"}, set()),
        ("花呗每月3k5", None, {OTHER_REPAYMENTS: "3500.00"}, set()),
    ],
)
def test_a_range_counts_by_the_written_rule(
    parser: QuantityParser, text: str, asked: str | None, expected: dict, ranged: set
) -> None:
    """Income and what can be paid: the low end; costs and duration: the high end."""
    assert extract_with_ranges(text, entities(parser, text), asked) == (expected, ranged)


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("今天天气不错", INCOME),
        ("", EXPENSES),
        ("我失业三个月了", HARDSHIP_MONTHS),  # how long it has lasted, not how long it will
        ("一千", HARDSHIP_REASON),  # a figure with no words, while a reason was asked
    ],
)
def test_nothing_is_made_up(parser: QuantityParser, text: str, asked: str) -> None:
    assert extract(text, entities(parser, text), asked) == {}


def test_hostile_entities_are_ignored() -> None:
    junk = [
        {"entity": "amount", "value": "1e999999", "start": 0, "end": 2},
        {"entity": "amount", "value": 3.5, "start": 0, "end": 2},
        {"entity": "amount", "value": "NaN", "start": 0, "end": 2},
        {"entity": "amount", "start": 0},
        {"entity": "months", "value": "x", "start": "a", "end": 1},
        {"entity": "months", "value": "x", "start": 0, "end": 1},
        {"entity": "months", "value": 10**30, "start": 0, "end": 1},
    ]
    assert extract("收入" * 5000, junk, INCOME) == {}


def test_the_hardship_reason_and_the_debtor_s_own_words() -> None:
    tagged = [{"entity": "hardship_reason", "value": "illness", "start": 0, "end": 4}]
    assert hardship_from(tagged, "生病住院了", None) == ("illness", "生病住院了")
    assert hardship_from([], "家里老人要人照顾", HARDSHIP_REASON) == ("other", "家里老人要人照顾")
    assert hardship_from([], "不知道", HARDSHIP_REASON) is None
    assert hardship_from([], "随便说说", None) is None
    made_up = [{"entity": "hardship_reason", "value": "lottery", "start": 0, "end": 2}]
    assert hardship_from(made_up, "中彩票", None) is None
    assert len(hardship_from(tagged, "长" * 10_000, None)[1]) == 300  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value", "known", "problem"),
    [
        (INCOME, "-500.00", {}, "negative"),
        (INCOME, "20000000.00", {}, "income_too_large"),
        (INCOME, "10000000.00", {}, None),
        (EXPENSES, "500001.00", {INCOME: "5000.00"}, "expenses_too_large"),
        (EXPENSES, "500000.00", {INCOME: "5000.00"}, None),
        (EXPENSES, "3000.00", {INCOME: "0.00"}, None),
        (HARDSHIP_MONTHS, "121", {}, "months_too_long"),
        (HARDSHIP_MONTHS, UNKNOWN, {}, None),
        (PROPOSED_MONTHLY, UNKNOWN, {}, None),
        (AVAILABLE_FUNDS, "2000000000000.00", {}, "amount_too_large"),
    ],
)
def test_implausible_values_are_named(
    field: str, value: str, known: dict[str, str], problem: str | None
) -> None:
    assert implausible(field, value, known, POLICY) == problem


def test_the_engine_s_view_of_the_slots() -> None:
    slots = {
        INCOME: "4000.00",
        EXPENSES: "2500.00",
        OTHER_REPAYMENTS: "0.00",
        HARDSHIP_REASON: "unemployment",
        HARDSHIP_MONTHS: "6",
        PROPOSED_MONTHLY: UNKNOWN,
        AVAILABLE_FUNDS: "0.00",
    }
    assert circumstances(slots) == Circumstances(
        monthly_income=Decimal("4000.00"),
        monthly_expenses=Decimal("2500.00"),
        other_repayments=Decimal("0.00"),
        hardship_reason="unemployment",
        hardship_months=6,
        proposed_monthly=None,
        available_funds=Decimal("0.00"),
    )
    assert circumstances({**slots, INCOME: None}) is None
    assert circumstances({**slots, HARDSHIP_REASON: "<script>"}).hardship_reason == "other"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "asked", "expected"),
    [
        ("过完年应该就好了", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "3"}),
        ("估计年底吧", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "1"}),
        ("下个月就好了", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "1"}),
        # Said unasked, it counts only when the message says the hardship ends then.
        ("收入四千 明年三月应该能找到工作", None, {INCOME: "4000.00", HARDSHIP_MONTHS: "4"}),
        ("下个月发工资", INCOME, {}),
        ("下个月还就好了吧", INCOME, {}),
        # A number of months always wins over the horizon.
        ("大概三个月 过完年", HARDSHIP_MONTHS, {HARDSHIP_MONTHS: "3"}),
    ],
)
def test_a_hardship_said_to_end_at_a_time(
    parser: QuantityParser, text: str, asked: str | None, expected: dict[str, str]
) -> None:
    assert extract(text, entities(parser, text), asked, TODAY) == expected
