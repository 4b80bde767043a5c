"""Find and normalise amounts, durations, dates, phone numbers and plan choices.

Negotiation turns on numbers that debtors write in every style: "一千五",
"1.5万", "两万八千元", "3k", "8千块", "半年", "36期", "下周五", "下个月10号".
A statistical extractor learns these poorly, so they are found by rules:

1. a blank spaCy ``zh`` pipeline segments the text with jieba (the same
   segmenter and user dictionary as the Rasa pipeline);
2. ``numeral_splitter`` splits tokens at numeral boundaries, because jieba glues
   numerals to neighbouring words unpredictably ("四千左右", "千块", "三个");
3. a spaCy ``Matcher`` finds the token patterns of each entity type;
4. overlapping matches are resolved (longest first, then by label priority) and
   each span's text is turned into a value with cn2an and calendar arithmetic.

Values: ``amount`` is yuan as a ``Decimal``; ``months`` an ``int``; ``date`` an
ISO ``YYYY-MM-DD`` string relative to a given day; ``phone`` the 11 digits;
``id_last4`` four characters (digits, or a final ``X``); ``plan_index`` a
1-based ``int``.
"""

from __future__ import annotations

import calendar
import functools
import glob
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import cn2an
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span, Token

CENT = Decimal("0.01")

#: Characters that make up a numeral: Arabic digits, the decimal point, Chinese
#: digits (also the financial forms) and magnitudes.
NUMERAL_CHARS = "0123456789.零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟"
_NUMERAL_RUN = re.compile(f"[{NUMERAL_CHARS}]+")
NUMERAL_TOKEN = f"^[{NUMERAL_CHARS}]+$"
DIGIT_TOKEN = "^[一二三四五六七八九1-9]$"  # noqa: S105 (a regex, not a secret)
LONE_DIGIT = re.compile(r"\s*[1-9]\s*")
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
ID_CONTEXT = re.compile(r"(身份证|证件|后四位|后4位|末四位|末4位|尾号|后几位)[^0-9]{0,6}$")
WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
WEEKDAYS.update({str(i + 1): i for i in range(7)})

#: When two matches overlap and have the same length, the earlier label wins.
LABEL_PRIORITY = ["phone", "id_last4", "date", "months", "plan_index", "amount"]


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


_MAGNITUDES = {"十": 10, "百": 100, "千": 1000, "万": 10000, "w": 10000, "k": 1000}
_NOT_BEFORE = "(?<![0-9.一二两三四五六七八九十百千万])"
#: "四五千", "两三千块", "一两万": two neighbouring digits and one magnitude.
_ADJACENT_AMOUNT = re.compile(
    _NOT_BEFORE + r"([一二两三四五六七八九])([二两三四五六七八九])(十|百|千|万)(块钱|块|元)?"
)
#: "三四个月", "一两年".
_ADJACENT_MONTHS = re.compile(
    _NOT_BEFORE + r"([一二两三四五六七八九])([二两三四五六七八九])(个月|個月|年)"
)
#: "十来个月", "十几个月": about ten.
_ABOUT_TEN_MONTHS = re.compile(_NOT_BEFORE + r"十(来|几)(个月|個月)")
_NUMBER = r"[0-9]+(?:\.[0-9]+)?|[零一二两三四五六七八九十百千万]+"
#: "3000-4000", "四千到五千", "3到4千", "5k-6k元".
_RANGE_AMOUNT = re.compile(
    rf"(?<![0-9.])({_NUMBER})\s*([千万wk])?\s*(?:-|~|～|到|至)\s*({_NUMBER})\s*([千万wk])?\s*(块钱|块|元)?"
)
#: "1w2", "3k5", "1万2": a magnitude and the next digit.
_SHORTHAND = re.compile(r"(?<![0-9.])([0-9]+)\s*([wk万千])([0-9])(?![0-9千百万wk])")


#: Digits read out one by one ("幺三八 零零幺三 八零零零"), with the radio forms of 1, 0, 7, 9.
_SPOKEN_DIGIT = dict(zip("零〇洞一幺二两三四五六七拐八九勾", "0001122345677899", strict=True))
_SPOKEN_RUN = re.compile(
    r"[零〇洞一幺二两三四五六七拐八九勾](?:\s*[零〇洞一幺二两三四五六七拐八九勾]){10}"
)


def _digit(char: str) -> int:
    """One Chinese digit's value ("两" 2), by the same numeral parser as everything else."""
    return int(parse_number(char) or 0)


def _adjacent(first: str, second: str) -> bool:
    return _digit(second) == _digit(first) + 1


def _yuan(number: str, magnitude: str | None) -> Decimal | None:
    value = parse_number(number)
    if value is None:
        return None
    return (value * _MAGNITUDES.get(magnitude or "", 1)).quantize(CENT, rounding=ROUND_HALF_UP)


def spoken_quantities(text: str) -> list[Quantity]:
    """Ranges, approximations and shorthand the token patterns read wrongly."""
    found: list[Quantity] = []
    lowered = text.lower()
    for match in _ADJACENT_AMOUNT.finditer(lowered):
        first, second, magnitude = match.group(1), match.group(2), match.group(3)
        if _adjacent(first, second):
            unit = _MAGNITUDES[magnitude]
            low, high = Decimal(_digit(first) * unit), Decimal(_digit(second) * unit)
            found.append(_quantity("amount", low.quantize(CENT), high.quantize(CENT), match, text))
    for match in _ADJACENT_MONTHS.finditer(lowered):
        if _adjacent(match.group(1), match.group(2)):
            factor = 12 if match.group(3) == "年" else 1
            shortest = _digit(match.group(1)) * factor
            longest = _digit(match.group(2)) * factor
            found.append(_quantity("months", shortest, longest, match, text))
    for match in _ABOUT_TEN_MONTHS.finditer(lowered):
        found.append(_quantity("months", 10, 12 if match.group(1) == "来" else 19, match, text))
    for match in _RANGE_AMOUNT.finditer(lowered):
        low_magnitude = match.group(2) or match.group(4)
        bottom = _yuan(match.group(1), low_magnitude)
        top = _yuan(match.group(3), match.group(4))
        has_unit = bool(match.group(2) or match.group(4) or match.group(5))
        if bottom is None or top is None or not bottom < top:
            continue
        if not has_unit and top < 100:  # "1-2", "3到5": not money
            continue
        found.append(_quantity("amount", bottom, top, match, text))
    for match in _SPOKEN_RUN.finditer(lowered):
        digits = "".join(_SPOKEN_DIGIT[c] for c in match.group(0) if not c.isspace())
        if re.fullmatch(r"1[3-9][0-9]{9}", digits):
            found.append(Quantity("phone", digits, match.start(), match.end(), match.group(0)))
    for match in _SHORTHAND.finditer(lowered):
        step = _MAGNITUDES[match.group(2)]
        whole = Decimal(int(match.group(1)) * step + int(match.group(3)) * step // 10)
        found.append(_quantity("amount", whole.quantize(CENT), None, match, text))
    taken: list[Quantity] = []
    for quantity in sorted(found, key=lambda q: (q.start, -(q.end - q.start))):
        if not any(quantity.start < t.end and t.start < quantity.end for t in taken):
            taken.append(quantity)
    return taken


def _quantity(entity: str, low: Any, high: Any, match: re.Match[str], text: str) -> Quantity:
    end = match.end()
    while end > match.start() and text[end - 1].isspace():
        end -= 1
    return Quantity(entity, low, match.start(), end, text[match.start() : end], high)


def _num(op: str = "+") -> dict[str, Any]:
    return {"TEXT": {"REGEX": NUMERAL_TOKEN}, "OP": op}


def _in(*words: str, op: str | None = None) -> dict[str, Any]:
    pattern: dict[str, Any] = {"LOWER": {"IN": list(words)}}
    if op:
        pattern["OP"] = op
    return pattern


def _patterns() -> dict[str, list[list[dict[str, Any]]]]:
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


@Language.component("numeral_splitter")
def numeral_splitter(doc: Doc) -> Doc:
    """Split every token at the boundaries between numeral and other characters."""
    with doc.retokenize() as retokenizer:
        for token in doc:
            text = token.text
            pieces = [m.span() for m in _NUMERAL_RUN.finditer(text)]
            if not pieces or pieces == [(0, len(text))]:
                continue
            cuts = sorted({0, len(text), *(i for span in pieces for i in span)})
            orths = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
            heads: list[Token | tuple[Token, int]] = [(token, i) for i in range(len(orths))]
            retokenizer.split(token, orths, heads=heads)
    return doc


def load_jieba_dictionaries(directory: str | Path | None) -> None:
    """Load every jieba user dictionary in `directory`, as the Rasa pipeline does."""
    if directory is None:
        return
    import jieba

    for path in sorted(glob.glob(f"{directory}/*")):
        jieba.load_userdict(path)


@functools.lru_cache(maxsize=2)
def _pipeline(dictionary_path: str | None) -> tuple[Language, Matcher]:
    import spacy

    load_jieba_dictionaries(dictionary_path)
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    nlp.add_pipe("numeral_splitter")
    matcher = Matcher(nlp.vocab)
    for label, patterns in _patterns().items():
        matcher.add(label, patterns)
    return nlp, matcher


class QuantityParser:
    """Finds quantities in (already normalised) Chinese text."""

    def __init__(self, dictionary_path: str | Path | None = None) -> None:
        self._nlp, self._matcher = _pipeline(str(dictionary_path) if dictionary_path else None)

    def parse(self, text: str, today: date) -> list[Quantity]:
        """Return the non-overlapping quantities in `text`, in text order."""
        if not text or not text.strip():
            return []
        doc = self._nlp(text)
        candidates: list[tuple[int, int, Span, str]] = []
        for match_id, start, end in self._matcher(doc):
            label = self._nlp.vocab.strings[match_id]
            span = doc[start:end]
            candidates.append((-(span.end_char - span.start_char), _priority(label), span, label))
        candidates.sort(key=lambda c: (c[0], c[1], c[2].start))
        taken: list[Span] = []
        rejected: list[tuple[Span, str]] = []
        found: list[Quantity] = []
        for _, _, span, label in candidates:
            if any(_overlap(span, t) for t in taken):
                continue
            # "2月30日" is no date: its tail "30日" must not become one either.
            if any(_overlap(span, r) and label == r_label for r, r_label in rejected):
                continue
            value = _value(label, span, doc, today)
            if value is None:
                rejected.append((span, label))
                continue
            taken.append(span)
            found.append(Quantity(label, value, span.start_char, span.end_char, span.text))
        spoken = spoken_quantities(text)
        found = [
            q for q in found if not any(q.start < s.end and s.start < q.end for s in spoken)
        ] + spoken
        if not found and LONE_DIGIT.fullmatch(text):
            # A reply of a single digit answers a numbered list of choices.
            digit = text.strip()
            start = text.index(digit)
            found.append(Quantity("plan_index", int(digit), start, start + 1, digit))
        return sorted(found, key=lambda q: q.start)


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _priority(label: str) -> int:
    return LABEL_PRIORITY.index(label)


def _value(label: str, span: Span, doc: Doc, today: date) -> Any:
    text = span.text
    if label == "phone":
        return text
    if label == "id_last4":
        preceding = doc.text[: span.start_char]
        return text.replace(" ", "").upper() if ID_CONTEXT.search(preceding) else None
    if label == "date":
        parsed = parse_date(text, today)
        return parsed.isoformat() if parsed else None
    if label == "months":
        return parse_months(text)
    if label == "plan_index":
        return parse_plan_index(text)
    if label == "amount":
        return _amount_in_context(span, doc)
    raise ValueError(f"unknown label {label}")


def _amount_in_context(span: Span, doc: Doc) -> Decimal | None:
    amount = parse_amount(span.text)
    if amount is None:
        return None
    has_unit = any(t.lower_ in AMOUNT_SUFFIXES or t.lower_ in CURRENCY_WORDS for t in span)
    has_magnitude = any(ch in "十百千万亿拾佰仟" for ch in span.text)
    # A bare small number ("我有3张卡", "一下") is not an amount of money.
    if not (has_unit or has_magnitude) and amount < 10:
        return None
    # Digits long enough to be an account, card or ID number are not amounts.
    if re.fullmatch(r"[0-9]{9,}", span.text):
        return None
    # "逾期45天", "3张卡", "5%": a count or a rate, not money.
    if span.end < len(doc) and doc[span.end].text in NON_MONEY_UNITS and not has_unit:
        return None
    # "-500", "负五百": kept negative so that validation can say it is impossible.
    if span.start_char > 0 and doc.text[span.start_char - 1] in "-−负":
        return -amount
    return amount


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


def parse_plan_index(text: str) -> int | None:
    """Parse a 1-based choice ("第二个" 2, "选2" 2)."""
    digit = re.search(DIGIT_TOKEN.strip("^$"), text)
    if not digit:
        return None
    number = parse_number(digit.group(0))
    return int(number) if number is not None else None


def _add_months(day: date, months: int) -> tuple[int, int]:
    total = day.year * 12 + day.month - 1 + months
    return total // 12, total % 12 + 1


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    number = parse_number(text)
    if number is None or number != int(number):
        return None
    return int(number)


def parse_date(text: str, today: date) -> date | None:
    """Resolve a date expression relative to `today` (the debtor's local date).

    A day without a month ("15号") is the next such day from today; a month and
    day without a year ("12月20日") is the next such date; "月底" is the last day
    of this month; "下周五" is Friday of next week; "周五" the coming Friday.
    """
    compact = text.replace(" ", "")
    relative = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3}
    if compact in relative:
        return today + timedelta(days=relative[compact])
    next_month = compact.startswith(("下个月", "下月"))
    offset = 2 if compact.startswith("下下个月") else 1 if next_month else 0
    year, month = _add_months(today, offset)

    if re.search("(月底|月末|底|末)$", compact) and not re.search("(周|星期|礼拜)", compact):
        if compact in {"年底", "年末"}:
            return date(today.year, 12, 31)
        return _month_end(year, month)
    if re.search("(月初|初)$", compact):
        year, month = _add_months(today, max(offset, 1))
        return date(year, month, 1)

    week = re.fullmatch("(下个?|这个?|本)?(周|星期|礼拜)(.)", compact)
    if week or compact in {"周末", "下周末", "这周末"}:
        if week:
            prefix, day_char = week.group(1) or "", week.group(3)
        else:
            prefix, day_char = compact[:-2], "末"
        if day_char not in WEEKDAYS:
            return None
        monday = today - timedelta(days=today.weekday())
        target = monday + timedelta(days=WEEKDAYS[day_char])
        if prefix.startswith("下") or (not prefix and target < today):
            target += timedelta(days=7)
        return target

    full = re.fullmatch(
        f"([{NUMERAL_CHARS}]+)(?:年|-)([{NUMERAL_CHARS}]+)(?:月|-)([{NUMERAL_CHARS}]+)[日号]?",
        compact,
    )
    if full:
        y, m, d = (_int(g) for g in full.groups())
        if y is None or m is None or d is None:
            return None
        if y < 100:
            y += 2000
        return _safe_date(y, m, d)

    month_day = re.fullmatch(f"([{NUMERAL_CHARS}]+)月([{NUMERAL_CHARS}]+)[日号]", compact)
    if month_day:
        m, d = (_int(g) for g in month_day.groups())
        if m is None or d is None:
            return None
        candidate = _safe_date(today.year, m, d)
        if candidate is not None and candidate < today:
            candidate = _safe_date(today.year + 1, m, d)
        return candidate

    day_only = re.fullmatch(
        f"(?:下下个月|下个月|下月|这个月|本月|当月)?([{NUMERAL_CHARS}]+)[日号]", compact
    )
    if day_only:
        d = _int(day_only.group(1))
        if d is None or not 1 <= d <= 31:
            return None
        candidate = _safe_date(year, month, d)
        if offset == 0 and (candidate is None or candidate < today):
            year, month = _add_months(today, 1)
            candidate = _safe_date(year, month, d)
        return candidate
    return None


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
