"""Verification secrets masked before anything is stored, published or logged.

The mobile number and the ID-card suffix a debtor types to verify work like a
password. The actions receive them as typed; whatever is kept or sent on (the
tracker store's events and state row, the event broker, case summaries, log
lines) carries masked forms only: a mobile as `138****8000`, an ID suffix (and a
whole national ID) as `****`. The debtor's name stays: negotiators need it.

Masked, in message texts and in values:

- any 11-digit mainland mobile, also with spaces, dashes or +86, in full-width
  digits or read out in Chinese digits ("幺三八…");
- any whole national ID (18 or 15 characters);
- the values of `id_last4` and `phone` entities and slots, the text span of
  those entities, and every repetition of those values in the same batch of
  events: a suffix typed bare ("张伟 1234 13800138000") is known only from the
  slot the form set in that turn.

Other numbers stay readable ("我月收入4000"): the negotiation reads them back.
Every function here returns new values and is idempotent.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "****"
#: Entities and slots whose values are verification secrets.
SECRET_NAMES = frozenset({"id_last4", "phone"})

_SEPARATOR = r"[\s\-]?"
_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[\s\-]?)?(1[3-9][0-9](?:[\s\-]?[0-9]){8})(?![0-9])")
_MOBILE_DIGITS = re.compile(r"1[3-9][0-9]{9}")
_MASKED_MOBILE = re.compile(r"1[3-9][0-9]\*{4}[0-9]{4}")
_NATIONAL_ID = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9])")
#: Digits read out one by one, with the radio forms of 1, 0, 7 and 9.
_CN_DIGITS = "零〇洞一幺二两三四五六七拐八九勾"
_CN_VALUES = str.maketrans(_CN_DIGITS, "0001122345677899")
_SPOKEN = re.compile(
    rf"(?<![{_CN_DIGITS}])[{_CN_DIGITS}](?:\s*[{_CN_DIGITS}]){{10}}(?![{_CN_DIGITS}])"
)
_SEPARATORS = re.compile(r"[\s\-]+")
#: A value that is nothing but a number someone could type to verify.
_TOKEN = re.compile(r"\+?[0-9]+[Xx]?")
#: Shortest secret searched for elsewhere: an ID suffix.
_MIN_TOKEN = 4

#: Keys of nested values that hold identifiers, never text (left untouched).
_IDENTIFIER_SUFFIXES = ("id", "reference")

Span = tuple[int, int, str]


# --- masks ------------------------------------------------------------------------------


def mobile_mask(digits: str) -> str:
    """`13800138000` -> `138****8000`."""
    return f"{digits[:3]}****{digits[-4:]}"


def is_masked(value: object) -> bool:
    """Whether `value` is already a mask (`****` or `138****8000`)."""
    return isinstance(value, str) and (value == MASK or bool(_MASKED_MOBILE.fullmatch(value)))


def _fold(text: str) -> str:
    """Full-width digits and signs as ASCII, one character for one (offsets stay valid)."""
    if text.isascii():
        return text
    folded = []
    for char in text:
        normal = unicodedata.normalize("NFKC", char)
        folded.append(normal if len(normal) == 1 else char)
    return "".join(folded)


def _mobile_in(value: str) -> str | None:
    found = _MOBILE.search(_fold(value))
    if found:
        return _SEPARATORS.sub("", found.group(1))
    spoken = _spoken_mobiles(_fold(value))
    return spoken[0][2] if spoken else None


def mask_secret(value: Any) -> Any:
    """The masked form of an `id_last4` or `phone` value: `138****8000` or `****`."""
    if value is None or is_masked(value):
        return value
    mobile = _mobile_in(value) if isinstance(value, str) else None
    return mobile_mask(mobile) if mobile else MASK


# --- texts ------------------------------------------------------------------------------


def _spoken_mobiles(folded: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _SPOKEN.finditer(folded):
        digits = _SEPARATORS.sub("", match.group(0)).translate(_CN_VALUES)
        if _MOBILE_DIGITS.fullmatch(digits):
            found.append((match.start(), match.end(), digits))
    return found


@functools.lru_cache(maxsize=256)
def _secret_pattern(token: str) -> re.Pattern[str]:
    body = _SEPARATOR.join(re.escape(char) for char in token)
    return re.compile(rf"(?<![0-9]){body}(?![0-9])", re.IGNORECASE)


def _token_mask(token: str) -> str:
    return mobile_mask(token) if _MOBILE_DIGITS.fullmatch(token) else MASK


def _spans(folded: str, secrets: frozenset[str]) -> list[Span]:
    """Every stretch of `folded` to mask, with its mask (they may overlap)."""
    found: list[Span] = [
        (m.start(), m.end(), mobile_mask(_SEPARATORS.sub("", m.group(1))))
        for m in _MOBILE.finditer(folded)
    ]
    found += [(start, end, mobile_mask(digits)) for start, end, digits in _spoken_mobiles(folded)]
    found += [(m.start(), m.end(), MASK) for m in _NATIONAL_ID.finditer(folded)]
    for token in secrets:
        found += [
            (m.start(), m.end(), _token_mask(token))
            for m in _secret_pattern(token).finditer(folded)
        ]
    return found


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans, in order; of overlapping ones the earliest, then longest, wins."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s[0], s[0] - s[1])):
        if kept and span[0] < kept[-1][1]:
            continue
        kept.append(span)
    return kept


def _apply(text: str, spans: list[Span]) -> tuple[str, Callable[[int, bool], int]]:
    """`text` with `spans` replaced, and where an old offset lands in the new text."""
    parts, last = [], 0
    for start, end, mask in spans:
        parts += [text[last:start], mask]
        last = end
    parts.append(text[last:])

    def move(offset: int, is_end: bool) -> int:
        shift = 0
        for start, end, mask in spans:
            if offset <= start:
                break
            if offset < end:  # inside a masked stretch: to its edge
                return start + shift + (len(mask) if is_end else 0)
            shift += len(mask) - (end - start)
        return offset + shift

    return "".join(parts), move


def redact_text(text: str, secrets: frozenset[str] = frozenset()) -> str:
    """`text` with mobiles, national IDs and the given secret values masked."""
    if not text:
        return text
    return _apply(text, _merge(_spans(_fold(text), secrets)))[0]


def _tokens_of(value: Any) -> set[str]:
    """The secret a slot or entity value stands for, as a bare token ("1234", "13800138000").

    Only a value that is nothing but such a number gives one: a long answer the
    form took whole ("后四位是1234，欠款5000") is known from the value it was
    normalised to, not searched for all its numbers.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or "*" in value:
        return set()
    compact = _SEPARATORS.sub("", _fold(value)).translate(_CN_VALUES)
    if not _TOKEN.fullmatch(compact):
        return set()
    digits = compact.lstrip("+")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and _MOBILE_DIGITS.fullmatch(digits[len(prefix) :]):
            digits = digits[len(prefix) :]
            break
    return {digits.upper()} if len(digits) >= _MIN_TOKEN else set()


# --- events -----------------------------------------------------------------------------


def _entities(event: Mapping[str, Any]) -> list[Any]:
    if event.get("event") == "entities":
        found = event.get("entities")
    else:
        parse_data = event.get("parse_data")
        found = parse_data.get("entities") if isinstance(parse_data, Mapping) else None
    return found if isinstance(found, list) else []


def _span_of(entity: Mapping[str, Any], text: str) -> tuple[int, int] | None:
    start, end = entity.get("start"), entity.get("end")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
        return start, end
    return None


def secrets_in(events: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The secret values that `events` (serialised, as Rasa stores them) carry."""
    found: set[str] = set()
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if event.get("event") == "slot" and event.get("name") in SECRET_NAMES:
            found |= _tokens_of(event.get("value"))
        given = event.get("text")
        text = given if isinstance(given, str) else ""
        for entity in _entities(event):
            if isinstance(entity, Mapping) and entity.get("entity") in SECRET_NAMES:
                found |= _tokens_of(entity.get("value"))
                span = _span_of(entity, text)
                if span:
                    found |= _tokens_of(text[span[0] : span[1]])
    return frozenset(found)


def _identifier(key: object) -> bool:
    return isinstance(key, str) and key.lower().endswith(_IDENTIFIER_SUFFIXES)


def redact_nested(value: Any, secrets: frozenset[str] = frozenset()) -> Any:
    """Every text in a JSON-like value masked, except under identifier keys (`*id`)."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {k: v if _identifier(k) else redact_nested(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_nested(item, secrets) for item in value]
    return value


def redact_slot(name: str, value: Any, secrets: frozenset[str] = frozenset()) -> Any:
    """A slot's value as it may be kept: a secret slot masked whole, texts masked within."""
    if name in SECRET_NAMES:
        return mask_secret(value)
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value


def redact_slots(slots: Mapping[str, Any], secrets: frozenset[str] = frozenset()) -> dict:
    """Slot values (a tracker's state) as they may be kept."""
    return {name: redact_slot(name, value, secrets) for name, value in slots.items()}


def _redact_entity(entity: Any, secrets: frozenset[str]) -> Any:
    if not isinstance(entity, dict):
        return entity
    if entity.get("entity") in SECRET_NAMES:
        entity["value"] = mask_secret(entity.get("value"))
    elif _tokens_of(entity.get("value")) & secrets:
        entity["value"] = _token_mask(next(iter(_tokens_of(entity["value"]))))
    elif isinstance(entity.get("value"), str):
        entity["value"] = redact_text(entity["value"], secrets)
    return entity


def _redact_user(data: dict[str, Any], secrets: frozenset[str]) -> None:
    text = data.get("text")
    found = data.get("parse_data")
    parse_data: dict[str, Any] = found if isinstance(found, dict) else {}
    entities = _entities(data)
    if isinstance(text, str) and text:
        spans = _spans(_fold(text), secrets)
        for entity in entities:
            span = _span_of(entity, text) if isinstance(entity, dict) else None
            if span and entity.get("entity") in SECRET_NAMES:
                spans.append((*span, mask_secret(entity.get("value"))))
        masked = _merge(spans)
        redacted, move = _apply(text, masked)
        for entity in entities:
            span = _span_of(entity, text) if isinstance(entity, dict) else None
            if span:
                # "1234" typed for the suffix was also read as an amount: its value goes too.
                hidden = next((m for m in masked if m[0] < span[1] and span[0] < m[1]), None)
                if hidden and entity.get("entity") not in SECRET_NAMES:
                    entity["value"] = hidden[2]
                entity["start"], entity["end"] = move(span[0], False), move(span[1], True)
        data["text"] = redacted
        if parse_data.get("text") == text:
            parse_data["text"] = redacted
    if isinstance(parse_data.get("text"), str) and parse_data["text"] != data.get("text"):
        parse_data["text"] = redact_text(parse_data["text"], secrets)
    for entity in entities:
        _redact_entity(entity, secrets)
    for holder in (data, parse_data):
        if "metadata" in holder:
            holder["metadata"] = redact_nested(holder["metadata"], secrets)


def redact_event(event: Mapping[str, Any], secrets: frozenset[str] | None = None) -> dict[str, Any]:
    """A copy of one serialised event with the secrets masked.

    `secrets` are the values known from the rest of its batch (`secrets_in`);
    by default those of the event alone.
    """
    known = secrets_in([event]) if secrets is None else secrets
    data = copy.deepcopy(dict(event))
    kind = data.get("event")
    if kind == "user":
        _redact_user(data, known)
    elif kind == "slot" and isinstance(data.get("name"), str):
        data["value"] = redact_slot(data["name"], data.get("value"), known)
    elif kind == "entities":
        data["entities"] = [_redact_entity(e, known) for e in _entities(data)]
    elif kind == "bot":
        if isinstance(data.get("text"), str):
            data["text"] = redact_text(data["text"], known)
        if "metadata" in data:
            data["metadata"] = redact_nested(data["metadata"], known)
    return data


def redact_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the serialised events of one batch (a turn), its secrets masked in all."""
    batch = list(events)
    secrets = secrets_in(batch)
    return [redact_event(event, secrets) for event in batch]


# --- logs -------------------------------------------------------------------------------

#: `id_last4: 1234`, `'phone': '138…'`, `SlotSet(key: id_last4, value: 1234)`, JSON slot events.
_LOG_VALUE = re.compile(
    r"(?:id_last4|phone)['\"]?(?:,\s*['\"]?value['\"]?)?\s*[:=]\s*['\"]?([^'\"\s,)}\]\\]+)"
)
#: An entity dict of a secret entity, as Rasa logs parse results.
_LOG_ENTITY = re.compile(r"\{[^{}]*['\"]entity['\"]:\s*['\"](?:id_last4|phone)['\"][^{}]*\}")
_LOG_ENTITY_VALUE = re.compile(r"['\"]value['\"]:\s*['\"]([^'\"]*)['\"]")
#: A message quoted in Rasa's debug lines: `parse_data_text='…'`, `"text": "…"`,
#: `user text: … |` (the policies' states).
_LOG_MESSAGES = (
    re.compile(
        r"""(?<![A-Za-z_])['"]?(?:parse_data_text|user_text|text)['"]?\s*[:=]\s*(['"])(.*?)(?<!\\)\1"""
    ),
    re.compile(r"user text: ()(.*?)(?= \||\\n|\n|$)"),
)
#: Four characters shaped like an ID suffix, standing alone.
_LOG_SUFFIX = re.compile(r"(?<![0-9A-Za-z])[0-9]{3}[0-9Xx](?![0-9A-Za-z])")


def redact_log_line(line: str) -> str:
    """A log line with mobiles, national IDs and the secret values it names masked.

    Rasa's debug lines quote a message before anything says what its numbers
    are: every suffix-shaped number of a quoted message is masked, there and
    wherever else the line repeats it (the entities read from it).
    """
    secrets: set[str] = set()
    for match in _LOG_VALUE.finditer(line):
        secrets |= _tokens_of(match.group(1))
    for match in _LOG_ENTITY.finditer(line):
        for value in _LOG_ENTITY_VALUE.finditer(match.group(0)):
            secrets |= _tokens_of(value.group(1))
    for pattern in _LOG_MESSAGES:
        for match in pattern.finditer(line):
            secrets |= {found.group(0).upper() for found in _LOG_SUFFIX.finditer(match.group(2))}
    return redact_text(line, frozenset(secrets))


class RedactingLogFilter(logging.Filter):
    """Masks verification secrets in every record a handler writes (message and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact_log_line(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_line(record.exc_text)
        return True


_FILTER = RedactingLogFilter()


def install_log_redaction() -> None:
    """Put the filter on the handlers of the root logger and of every logger that has some."""
    loggers: list[Any] = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
