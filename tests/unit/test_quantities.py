"""The rule-based quantity parser on the phrasings debtors actually use."""

from datetime import date
from decimal import Decimal

import pytest

from bot.rasa_ext.nlu.quantities import (
    QuantityParser,
    as_entities,
    parse_amount,
    parse_date,
    parse_months,
)

# Saturday 28 November 2026.
TODAY = date(2026, 11, 28)


@pytest.fixture(scope="module")
def parser() -> QuantityParser:
    return QuantityParser("data/nlu/jieba")


def found(parser: QuantityParser, text: str) -> list[tuple[str, object]]:
    return [(q.entity, q.value) for q in parser.parse(text, TODAY)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一千五", "1500"),
        ("1.5万", "15000"),
        ("两万八千元", "28000"),
        ("3k", "3000"),
        ("8千块", "8000"),
        ("五百", "500"),
        ("两千五", "2500"),
        ("1.5w", "15000"),
        ("1万5", "15000"),
        ("20,000元", "20000"),
        ("1234.56元", "1234.56"),
        ("壹万贰仟", "12000"),
    ],
)
def test_amounts(parser: QuantityParser, text: str, expected: str) -> None:
    assert found(parser, text) == [("amount", Decimal(expected))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("半年", 6), ("两年", 24), ("三个月", 3), ("36期", 36), ("一年半", 18), ("分12期", 12)],
)
def test_months(parser: QuantityParser, text: str, expected: int) -> None:
    assert found(parser, text) == [("months", expected)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("月底", "2026-11-30"),
        ("下周五", "2026-12-04"),
        ("周五", "2026-12-04"),
        ("15号", "2026-12-15"),
        ("下个月10号", "2026-12-10"),
        ("12月20日", "2026-12-20"),
        ("3月1日", "2027-03-01"),
        ("下个月底", "2026-12-31"),
        ("明天", "2026-11-29"),
        ("年底", "2026-12-31"),
        ("2026年12月31日", "2026-12-31"),
        ("2027-01-05", "2027-01-05"),
    ],
)
def test_dates(parser: QuantityParser, text: str, expected: str) -> None:
    assert found(parser, text) == [("date", expected)]


def test_several_slots_in_one_message(parser: QuantityParser) -> None:
    text = "我失业三个月了，现在打零工一个月四千左右，房租加吃饭要两千五"
    assert found(parser, text) == [
        ("months", 3),
        ("months", 1),
        ("amount", Decimal("4000")),
        ("amount", Decimal("2500")),
    ]


def test_identity_in_one_message(parser: QuantityParser) -> None:
    text = "我叫张伟，身份证后四位1234，手机13800138000"
    assert found(parser, text) == [("id_last4", "1234"), ("phone", "13800138000")]


def test_id_last4_with_x(parser: QuantityParser) -> None:
    assert found(parser, "身份证尾号123x") == [("id_last4", "123X")]


def test_four_digits_without_id_context_are_not_id(parser: QuantityParser) -> None:
    assert found(parser, "我每月还1234") == [("amount", Decimal("1234"))]


def test_promise_with_date_and_amount(parser: QuantityParser) -> None:
    assert found(parser, "下周五先还三千") == [
        ("date", "2026-12-04"),
        ("amount", Decimal("3000")),
    ]


@pytest.mark.parametrize(
    ("text", "expected"), [("选2", 2), ("第二个", 2), ("我要第一个方案", 1), ("3", 3)]
)
def test_plan_choice(parser: QuantityParser, text: str, expected: int) -> None:
    assert found(parser, text) == [("plan_index", expected)]


@pytest.mark.parametrize(
    "text",
    ["我有3张卡", "逾期45天", "等一下", "利率5%", "", "   ", "😀😀", "？？！！", "hello"],
)
def test_no_amount_where_there_is_none(parser: QuantityParser, text: str) -> None:
    assert found(parser, text) == []


def test_impossible_date_is_not_resolved(parser: QuantityParser) -> None:
    assert found(parser, "2月30日") == []


def test_negative_amount_is_kept_negative(parser: QuantityParser) -> None:
    assert found(parser, "收入-500") == [("amount", Decimal("-500"))]


def test_long_card_number_is_not_an_amount(parser: QuantityParser) -> None:
    assert found(parser, "卡号6222021234567890123") == []


def test_offsets_point_into_the_text(parser: QuantityParser) -> None:
    text = "每个月只能还一千"
    [quantity] = parser.parse(text, TODAY)
    assert text[quantity.start : quantity.end] == "一千"


def test_entities_are_json_safe() -> None:
    parser = QuantityParser("data/nlu/jieba")
    entities = as_entities(parser.parse("每月还1500.50元，分36期", TODAY))
    assert [(e["entity"], e["value"]) for e in entities] == [
        ("amount", "1500.50"),
        ("months", 36),
    ]
    whole = as_entities(parser.parse("还一千", TODAY))
    assert whole[0]["value"] == 1000
    assert whole[0]["extractor"] == "QuantityExtractor"


def test_parse_amount_rounds_to_cent() -> None:
    assert parse_amount("1.005万") == Decimal("10050.00")
    assert parse_amount("0.125") == Decimal("0.13")
    assert parse_amount("不是数字") is None


def test_parse_months_rejects_nonsense() -> None:
    assert parse_months("零个月") is None
    assert parse_months("1.5个月") is None


def test_day_already_passed_this_month_means_next_month() -> None:
    assert parse_date("5号", TODAY) == date(2026, 12, 5)
    assert parse_date("28号", TODAY) == date(2026, 11, 28)


def test_month_end_across_a_year() -> None:
    assert parse_date("下个月底", date(2026, 12, 3)) == date(2027, 1, 31)
    assert parse_date("下个月底", date(2027, 1, 15)) == date(2027, 2, 28)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一个月四五千", [("months", 1, None), ("amount", Decimal("4000.00"), Decimal("5000.00"))]),
        ("两三千块", [("amount", Decimal("2000.00"), Decimal("3000.00"))]),
        ("一两万", [("amount", Decimal("10000.00"), Decimal("20000.00"))]),
        ("3000-4000", [("amount", Decimal("3000.00"), Decimal("4000.00"))]),
        ("四千到五千", [("amount", Decimal("4000.00"), Decimal("5000.00"))]),
        ("3到4千", [("amount", Decimal("3000.00"), Decimal("4000.00"))]),
        ("一两年", [("months", 12, 24)]),
        ("三四个月", [("months", 3, 4)]),
        ("十来个月", [("months", 10, 12)]),
        ("四六千", []),  # not neighbouring digits: no range, no made-up figure
    ],
)
def test_ranges_keep_both_ends(parser: QuantityParser, text: str, expected: list) -> None:
    assert [(q.entity, q.value, q.high) for q in parser.parse(text, TODAY)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1w2", [("amount", Decimal("12000.00"))]),
        ("3k5", [("amount", Decimal("3500.00"))]),
        ("1万2", [("amount", Decimal("12000.00"))]),
        ("手机幺三八 零零幺三 八零零零", [("phone", "13800138000")]),
        ("一三八零零一三八零零零", [("phone", "13800138000")]),
        ("1-2", []),
    ],
)
def test_shorthand_and_spoken_digits(parser: QuantityParser, text: str, expected: list) -> None:
    assert found(parser, text) == expected
