"""Length-preserving normalisation of Chinese user text.

Debtors type in Simplified or Traditional Chinese, often with full-width digits
("１５００") and punctuation. The NLU pipeline is trained on Simplified text with
half-width digits, so every message is normalised first. Entity offsets found
later must still point into the text the user wrote, so each character maps to
exactly one character: where OpenCC or NFKC would change the length of a
character, that character is kept as it was.
"""

from __future__ import annotations

import functools
import unicodedata

import opencc

#: Characters that carry no meaning but break tokenisation (zero-width spaces,
#: the byte-order mark, soft hyphen); each becomes a plain space.
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}


@functools.lru_cache(maxsize=4)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _half_width(char: str) -> str:
    if char in _INVISIBLE:
        return " "
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else char


def normalize_text(text: str, opencc_config: str = "t2s") -> str:
    """Return `text` in Simplified Chinese with half-width forms, same length."""
    if not text:
        return text
    folded = "".join(_half_width(c) for c in text)
    converter = _converter(opencc_config)
    converted = converter.convert(folded)
    if len(converted) == len(folded):
        return converted
    # A phrase-level conversion changed the length: convert per character.
    out = []
    for char in folded:
        single = converter.convert(char)
        out.append(single if len(single) == 1 else char)
    return "".join(out)
