"""Numerals and amounts of money: "一千五", "1.5万", "两万八千元", "3k", "四五千", "3000-4000".

`parse_number` reads a numeral in Arabic or Chinese form with cn2an, and
`parse_amount` an amount of yuan (a `Decimal` rounded to the cent). The other
functions find, by regex, the spoken forms of amounts that the token patterns
read wrongly: approximations ("四五千"), ranges ("3000-4000", "四千到五千") and
shorthand ("1w2", "3k5").
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import cn2an

from bot.rasa_ext.nlu.quantity_types import Quantity, quantity_from_match

CENT = Decimal("0.01")

#: Characters that make up a numeral: Arabic digits, the decimal point, Chinese
#: digits (also the financial forms) and magnitudes.
NUMERAL_CHARS = "0123456789.零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟"
NUMERAL_RUN = re.compile(f"[{NUMERAL_CHARS}]+")
NUMERAL_TOKEN = f"^[{NUMERAL_CHARS}]+$"
DIGIT_TOKEN = "^[一二三四五六七八九1-9]$"  # noqa: S105 (a regex, not a secret)
#: Words after a number that make it a count of something other than money.
NON_MONEY_UNITS = {
    "天",
    "日",
    "号",
    "岁",
    "次",
    "张",
    "个",
    "期",
    "年",
    "月",
    "位",
    "%",
    "％",
    "点",
    "分",
    "笔",
    "家",
    "人",
    "周",
    "小时",
    "分钟",
    "倍",
    "口",
    "套",
    "辆",
    "条",
    "项",
}

AMOUNT_SUFFIXES = {"k": Decimal(1000), "w": Decimal(10000)}
CURRENCY_WORDS = ["元", "块", "块钱", "圆", "人民币", "rmb", "yuan"]

MAGNITUDES = {"十": 10, "百": 100, "千": 1000, "万": 10000, "w": 10000, "k": 1000}
#: A spoken form must not start inside a longer numeral.
NOT_BEFORE = "(?<![0-9.一二两三四五六七八九十百千万])"
#: "四五千", "两三千块", "一两万": two neighbouring digits and one magnitude.
_ADJACENT_AMOUNT = re.compile(
    NOT_BEFORE + r"([一二两三四五六七八九])([二两三四五六七八九])(十|百|千|万)(块钱|块|元)?"
)
_NUMBER = r"[0-9]+(?:\.[0-9]+)?|[零一二两三四五六七八九十百千万]+"
#: "3000-4000", "四千到五千", "3到4千", "5k-6k元".
_RANGE_AMOUNT = re.compile(
    rf"(?<![0-9.])({_NUMBER})\s*([千万wk])?\s*(?:-|~|～|到|至)\s*({_NUMBER})\s*([千万wk])?\s*(块钱|块|元)?"
)
#: "1w2", "3k5", "1万2": a magnitude and the next digit.
_SHORTHAND = re.compile(r"(?<![0-9.])([0-9]+)\s*([wk万千])([0-9])(?![0-9千百万wk])")


def parse_number(text: str) -> Decimal | None:
    """Parse a numeral in Arabic or Chinese form ("1.5万", "两千五", "3千5")."""
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        return None
    try:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", cleaned):
            return Decimal(cleaned)
        value = cn2an.cn2an(cleaned, "smart")
    except (ValueError, InvalidOperation, KeyError, IndexError, TypeError):
        return None
    return Decimal(str(value))


def parse_amount(text: str) -> Decimal | None:
    """Parse an amount of yuan, rounded to the cent ("两万八千元" -> 28000.00)."""
    lowered = text.strip().lower()
    for word in sorted(CURRENCY_WORDS, key=len, reverse=True):
        lowered = lowered.removesuffix(word)
    multiplier = Decimal(1)
    if lowered and lowered[-1] in AMOUNT_SUFFIXES:
        multiplier = AMOUNT_SUFFIXES[lowered[-1]]
        lowered = lowered[:-1]
    number = parse_number(lowered)
    if number is None or number < 0:
        return None
    return (number * multiplier).quantize(CENT, rounding=ROUND_HALF_UP)


def parse_plan_index(text: str) -> int | None:
    """Parse a 1-based choice ("第二个" 2, "选2" 2)."""
    digit = re.search(DIGIT_TOKEN.strip("^$"), text)
    if not digit:
        return None
    number = parse_number(digit.group(0))
    return int(number) if number is not None else None


def digit_value(char: str) -> int:
    """One Chinese digit's value ("两" 2), by the same numeral parser as everything else."""
    return int(parse_number(char) or 0)


def adjacent_digits(first: str, second: str) -> bool:
    """Whether `second` is the digit after `first` ("四" and "五")."""
    return digit_value(second) == digit_value(first) + 1


def _yuan(number: str, magnitude: str | None) -> Decimal | None:
    value = parse_number(number)
    if value is None:
        return None
    return (value * MAGNITUDES.get(magnitude or "", 1)).quantize(CENT, rounding=ROUND_HALF_UP)


def amount_approximations(text: str) -> list[Quantity]:
    """Approximations ("四五千", "两三千块"): from the lower to the higher of two digits."""
    found: list[Quantity] = []
    for match in _ADJACENT_AMOUNT.finditer(text.lower()):
        first, second, magnitude = match.group(1), match.group(2), match.group(3)
        if adjacent_digits(first, second):
            unit = MAGNITUDES[magnitude]
            low, high = Decimal(digit_value(first) * unit), Decimal(digit_value(second) * unit)
            found.append(
                quantity_from_match("amount", low.quantize(CENT), high.quantize(CENT), match, text)
            )
    return found


def amount_ranges(text: str) -> list[Quantity]:
    """Ranges of money ("3000-4000", "四千到五千", "3到4千"; not "1-2" or "3到5")."""
    found: list[Quantity] = []
    for match in _RANGE_AMOUNT.finditer(text.lower()):
        low_magnitude = match.group(2) or match.group(4)
        bottom = _yuan(match.group(1), low_magnitude)
        top = _yuan(match.group(3), match.group(4))
        has_unit = bool(match.group(2) or match.group(4) or match.group(5))
        if bottom is None or top is None or not bottom < top:
            continue
        if not has_unit and top < 100:  # "1-2", "3到5": not money
            continue
        found.append(quantity_from_match("amount", bottom, top, match, text))
    return found


def shorthand_amounts(text: str) -> list[Quantity]:
    """Shorthand amounts ("1w2" 12000, "3k5" 3500, "1万2" 12000)."""
    found: list[Quantity] = []
    for match in _SHORTHAND.finditer(text.lower()):
        step = MAGNITUDES[match.group(2)]
        whole = Decimal(int(match.group(1)) * step + int(match.group(3)) * step // 10)
        found.append(quantity_from_match("amount", whole.quantize(CENT), None, match, text))
    return found
