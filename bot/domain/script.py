"""Which Chinese script a debtor reads, and the assistant's replies in it.

A message is read with OpenCC: its Traditional-only characters are those its
Simplified conversion (`t2s`) changes, its Simplified-only characters those the
Traditional conversion (`s2t`) changes. Digits, Latin letters, punctuation and
the characters both scripts share count for neither. A message is *clear* when
it has at least `MIN_CLEAR_CHARACTERS` Chinese characters and characters of one
script only; short answers ("好", "1", "确认"), messages without a script-specific
character and mixed ones are *neutral* and keep the conversation's script.

A Traditional message is placed in Taiwan or Hong Kong by its vocabulary
(薪水, 繳款, 帳單 … or 唔該, 俾, 冇 …), and the replies are converted with OpenCC's
`s2twp` (Taiwan characters and phrases) or `s2hk`; otherwise with `s2tw`, the
characters in everyday use (為, 核, 裡) rather than OpenCC's standard forms (爲, 覈,
裏) that `s2t` gives and no debtor writes. A Traditional message without regional
words keeps a region already known.

Replies are converted as a whole except for URLs, which are kept as written;
amounts, dates and reference numbers (`XS20261128-4F7A2C`, `RG…`) are ASCII and
OpenCC leaves them as they are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import opencc

SIMPLIFIED = "zh-Hans"
TRADITIONAL = "zh-Hant"
TAIWAN = "zh-Hant-TW"
HONG_KONG = "zh-Hant-HK"
SCRIPTS = (SIMPLIFIED, TRADITIONAL, TAIWAN, HONG_KONG)

#: The OpenCC configuration that turns the Simplified replies into each script.
OPENCC_CONFIG = {TRADITIONAL: "s2tw", TAIWAN: "s2twp", HONG_KONG: "s2hk"}

#: Fewer Chinese characters than this say nothing about the script ("好", "确认", "對").
MIN_CLEAR_CHARACTERS = 3

#: Words written in Taiwan and not in Hong Kong or on the mainland.
TAIWAN_WORDS = (
    "薪水",
    "繳款",
    "繳費",
    "繳不",
    "帳單",
    "帳戶",
    "帳號",
    "帳款",
    "對帳",
    "卡債",
    "身分證",
    "簡訊",
    "資訊",
    "網路",
    "軟體",
    "這邊",
    "裡",
)
#: Written Cantonese: words of Hong Kong.
HONG_KONG_WORDS = (
    "唔",
    "冇",
    "俾",
    "畀",
    "嘅",
    "咗",
    "啲",
    "佢",
    "喺",
    "嚟",
    "睇",
    "咩",
    "乜嘢",
    "嗰",
    "啱",
    "搵",
    "揾",
    "攰",
    "而家",
    "點樣",
    "邊度",
    "多謝晒",
    "身份證",
    "信用咭",
    "係咪",
)

_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
#: What a reply keeps as written: web addresses (up to a space or Chinese punctuation).
_URL_CHARACTERS = r"[^\s\u3000-\u303f\uff01-\uff5e<>\"']+"
_PROTECTED = re.compile(rf"(?:https?|ftp)://{_URL_CHARACTERS}|www\.{_URL_CHARACTERS}")


@functools.lru_cache(maxsize=8)
def _opencc(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _changed(text: str, config: str) -> list[bool]:
    """Per character of `text`: whether OpenCC's `config` changes it."""
    converter = _opencc(config)
    converted = converter.convert(text)
    if len(converted) != len(text):
        # A phrase changed the length: judge character by character.
        return [converter.convert(char) != char for char in text]
    return [a != b for a, b in zip(text, converted, strict=True)]


def _region(text: str) -> str | None:
    taiwan = sum(text.count(word) for word in TAIWAN_WORDS)
    hong_kong = sum(text.count(word) for word in HONG_KONG_WORDS)
    if taiwan > hong_kong:
        return TAIWAN
    if hong_kong > taiwan:
        return HONG_KONG
    return None


def marks(text: str) -> tuple[int, int]:
    """How many Traditional-only and how many Simplified-only characters `text` has."""
    if not text:
        return 0, 0
    traditional_only = _changed(text, "t2s")
    # Simplified-only: no Traditional standard keeps it (Hong Kong writes 户 and 温).
    simplified_only = [
        all(changed) and not to_s
        for *changed, to_s in zip(
            _changed(text, "s2t"),
            _changed(text, "s2tw"),
            _changed(text, "s2hk"),
            traditional_only,
            strict=True,
        )
    ]
    return sum(traditional_only), sum(simplified_only)


@functools.lru_cache(maxsize=4096)
def classify(text: str) -> str | None:
    """The script of a clear message (one of `SCRIPTS`); None for a neutral or mixed one."""
    if not text or len(_CHINESE.findall(text)) < MIN_CLEAR_CHARACTERS:
        return None
    traditional, simplified = marks(text)
    has_traditional, has_simplified = traditional > 0, simplified > 0
    if has_traditional == has_simplified:
        return None  # neither (shared characters only) or both (mixed)
    if has_simplified:
        return SIMPLIFIED
    return _region(text) or TRADITIONAL


def follow(current: str, text: str) -> str:
    """The conversation's script after the debtor wrote `text`.

    A clear message sets it; a neutral one keeps it; a Traditional message
    without regional words keeps the region already known.
    """
    found = classify(text)
    if found is None:
        return current
    if found == TRADITIONAL and current in (TAIWAN, HONG_KONG):
        return current
    return found


def preference(texts: Iterable[str], current: str = SIMPLIFIED) -> str:
    """The script after the debtor's messages `texts` (oldest first), from `current`."""
    for text in texts:
        current = follow(current, text)
    return current


def is_traditional(script: str | None) -> bool:
    return script in OPENCC_CONFIG


def _convert_plain(text: str, config: str) -> str:
    if "\x00" in text:
        # OpenCC reads a C string: it would stop at the first NUL.
        return "\x00".join(_convert_plain(part, config) for part in text.split("\x00"))
    return _opencc(config).convert(text)


def convert(text: str, script: str | None) -> str:
    """`text` (written in Simplified) as the debtor reading `script` should see it."""
    config = OPENCC_CONFIG.get(script or SIMPLIFIED)
    if config is None or not text:
        return text
    if "://" not in text and "www." not in text:
        return _convert_plain(text, config)
    parts, last = [], 0
    for match in _PROTECTED.finditer(text):
        parts.append(_convert_plain(text[last : match.start()], config))
        parts.append(match.group(0))
        last = match.end()
    parts.append(_convert_plain(text[last:], config))
    return "".join(parts)


#: Keys of a custom payload whose values are addresses or codes, never text.
_VERBATIM_KEYS = frozenset({"payload", "url", "href", "src", "id", "reference", "type"})


def convert_data(value: object, script: str | None) -> object:
    """A custom payload (dicts, lists, strings) with its texts converted.

    Values under keys such as `payload`, `url` or `reference` are kept as they are.
    """
    if not is_traditional(script):
        return value
    if isinstance(value, str):
        return convert(value, script)
    if isinstance(value, list):
        return [convert_data(item, script) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in _VERBATIM_KEYS else convert_data(item, script)
            for key, item in value.items()
        }
    return value


def convert_buttons(
    buttons: Iterable[Mapping[str, Any]], script: str | None
) -> list[dict[str, Any]]:
    """Buttons with their titles converted and their payloads as they were."""
    converted = []
    for button in buttons:
        button = dict(button)
        title = button.get("title")
        if isinstance(title, str):
            button["title"] = convert(title, script)
        converted.append(button)
    return converted


def to_simplified(text: str) -> str:
    """`text` folded to Simplified characters and mainland words (Taiwan phrases too)."""
    if not text:
        return text
    return _opencc("tw2sp").convert(text)
