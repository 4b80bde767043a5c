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

This module is the parser and re-exports the public names of its parts:
`quantity_types` (`Quantity`, `as_entities`), `quantity_numbers` (numerals and
money), `quantity_durations` (months), `quantity_dates` (dates),
`quantity_digits` (spoken mobile numbers, ID-card tails) and
`quantity_patterns` (the token patterns).
"""

from __future__ import annotations

import functools
import glob
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span, Token

from bot.rasa_ext.nlu.quantity_dates import WEEKDAYS, parse_date
from bot.rasa_ext.nlu.quantity_digits import ID_CONTEXT, id_last4, spoken_phone_numbers
from bot.rasa_ext.nlu.quantity_durations import month_approximations, parse_months
from bot.rasa_ext.nlu.quantity_numbers import (
    AMOUNT_SUFFIXES,
    CENT,
    CURRENCY_WORDS,
    DIGIT_TOKEN,
    NON_MONEY_UNITS,
    NUMERAL_CHARS,
    NUMERAL_RUN,
    NUMERAL_TOKEN,
    amount_approximations,
    amount_ranges,
    parse_amount,
    parse_number,
    parse_plan_index,
    shorthand_amounts,
)
from bot.rasa_ext.nlu.quantity_patterns import matcher_patterns
from bot.rasa_ext.nlu.quantity_types import Quantity, as_entities

__all__ = [
    "AMOUNT_SUFFIXES",
    "CENT",
    "CURRENCY_WORDS",
    "DIGIT_TOKEN",
    "ID_CONTEXT",
    "LABEL_PRIORITY",
    "LONE_DIGIT",
    "NON_MONEY_UNITS",
    "NUMERAL_CHARS",
    "NUMERAL_TOKEN",
    "WEEKDAYS",
    "Quantity",
    "QuantityParser",
    "as_entities",
    "load_jieba_dictionaries",
    "numeral_splitter",
    "parse_amount",
    "parse_date",
    "parse_months",
    "parse_number",
    "parse_plan_index",
    "spoken_quantities",
]

LONE_DIGIT = re.compile(r"\s*[1-9]\s*")

#: When two matches overlap and have the same length, the earlier label wins.
LABEL_PRIORITY = ["phone", "id_last4", "date", "months", "plan_index", "amount"]


def spoken_quantities(text: str) -> list[Quantity]:
    """Ranges, approximations and shorthand the token patterns read wrongly."""
    found = [
        *amount_approximations(text),
        *month_approximations(text),
        *amount_ranges(text),
        *spoken_phone_numbers(text),
        *shorthand_amounts(text),
    ]
    taken: list[Quantity] = []
    for quantity in sorted(found, key=lambda q: (q.start, -(q.end - q.start))):
        if not any(quantity.start < t.end and t.start < quantity.end for t in taken):
            taken.append(quantity)
    return taken


@Language.component("numeral_splitter")
def numeral_splitter(doc: Doc) -> Doc:
    """Split every token at the boundaries between numeral and other characters."""
    with doc.retokenize() as retokenizer:
        for token in doc:
            text = token.text
            pieces = [m.span() for m in NUMERAL_RUN.finditer(text)]
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
    for label, patterns in matcher_patterns().items():
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
        return id_last4(text, doc.text[: span.start_char])
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
