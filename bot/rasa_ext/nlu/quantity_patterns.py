"""The spaCy `Matcher` token patterns of each entity type the quantity parser finds."""

from __future__ import annotations

from typing import Any

from bot.rasa_ext.nlu.quantity_numbers import (
    AMOUNT_SUFFIXES,
    CURRENCY_WORDS,
    DIGIT_TOKEN,
    NUMERAL_TOKEN,
)


def _num(op: str = "+") -> dict[str, Any]:
    return {"TEXT": {"REGEX": NUMERAL_TOKEN}, "OP": op}


def _in(*words: str, op: str | None = None) -> dict[str, Any]:
    pattern: dict[str, Any] = {"LOWER": {"IN": list(words)}}
    if op:
        pattern["OP"] = op
    return pattern


def matcher_patterns() -> dict[str, list[list[dict[str, Any]]]]:
    """The token patterns of each label, for `Matcher.add`."""
    comma = {"TEXT": {"IN": [",", "，"]}}
    thousands = {"TEXT": {"REGEX": "^[0-9]{3}$"}}
    month_prefix = _in("下个月", "下月", "这个月", "本月", "当月", "下下个月")
    return {
        "phone": [[{"TEXT": {"REGEX": r"^1[3-9][0-9]{9}$"}}]],
        "id_last4": [
            [{"LOWER": {"REGEX": r"^[0-9]{3}[0-9x]$"}}],
            [{"TEXT": {"REGEX": r"^[0-9]{3}$"}}, {"LOWER": "x"}],
        ],
        "date": [
            [_num(), _in("年"), _num(), _in("月"), _num(), _in("日", "号")],
            [_num(), {"TEXT": "-"}, _num(), {"TEXT": "-"}, _num()],
            [_num(), _in("月"), _num(), _in("日", "号")],
            [month_prefix, _num(), _in("日", "号")],
            [_num(), _in("日", "号")],
            [month_prefix, _in("底", "末", "初")],
            [_in("月底", "月末", "月初", "年底", "年末", "下月底", "下月初")],
            [month_prefix, _in("月底", "月末", "月初")],
            [_in("下个", "下", "下下个"), _in("月底", "月末", "月初")],
            [
                _in("下", "这", "本", "下个", "这个", op="?"),
                _in("周", "星期", "礼拜", "下周", "这周", "本周", "下星期", "下礼拜"),
                {"TEXT": {"REGEX": "^[一二三四五六日天末1-7]$"}},
            ],
            [_in("周末", "下周末", "这周末")],
            [_in("今天", "明天", "后天", "大后天", "今日", "明日")],
        ],
        "months": [
            [_num(), _in("个", "個"), _in("月")],
            [_num(), _in("个月")],
            [_num(), _in("期")],
            [_num(), _in("年"), _in("半", op="?")],
            [_num(), _in("年半")],
            [_in("半年", "一年半", "大半年")],
        ],
        "plan_index": [
            [{"TEXT": "第"}, {"TEXT": {"REGEX": DIGIT_TOKEN}}],
            [_in("选", "选择", "要", "方案", "选第"), {"TEXT": {"REGEX": DIGIT_TOKEN}}],
        ],
        "amount": [
            [_num(), _in(*AMOUNT_SUFFIXES, op="?"), _in(*CURRENCY_WORDS, op="?")],
            # Thousands separators: "20,000元", "1,200,000".
            [_num(), comma, thousands, _in(*CURRENCY_WORDS, op="?")],
            [_num(), comma, thousands, comma, thousands, _in(*CURRENCY_WORDS, op="?")],
        ],
    }
