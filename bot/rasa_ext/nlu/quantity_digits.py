"""Digits that identify: a mobile number read out digit by digit, an ID card's last four.

A number read out one by one ("幺三八 零零幺三 八零零零") uses the radio forms
of 1, 0, 7 and 9 (幺, 洞, 拐, 勾) as well as the plain digits.
"""

from __future__ import annotations

import re

from bot.rasa_ext.nlu.quantity_types import Quantity

#: Digits read out one by one ("幺三八 零零幺三 八零零零"), with the radio forms of 1, 0, 7, 9.
_SPOKEN_DIGIT = dict(zip("零〇洞一幺二两三四五六七拐八九勾", "0001122345677899", strict=True))
_SPOKEN_RUN = re.compile(
    r"[零〇洞一幺二两三四五六七拐八九勾](?:\s*[零〇洞一幺二两三四五六七拐八九勾]){10}"
)
#: Words just before four characters that make them the last four of an ID card.
ID_CONTEXT = re.compile(r"(身份证|证件|后四位|后4位|末四位|末4位|尾号|后几位)[^0-9]{0,6}$")


def spoken_phone_numbers(text: str) -> list[Quantity]:
    """Mobile numbers read out as eleven Chinese digits."""
    found: list[Quantity] = []
    for match in _SPOKEN_RUN.finditer(text.lower()):
        digits = "".join(_SPOKEN_DIGIT[c] for c in match.group(0) if not c.isspace())
        if re.fullmatch(r"1[3-9][0-9]{9}", digits):
            found.append(Quantity("phone", digits, match.start(), match.end(), match.group(0)))
    return found


def id_last4(text: str, preceding: str) -> str | None:
    """`text` as the last four characters of an ID card, if the words before ask for them."""
    return text.replace(" ", "").upper() if ID_CONTEXT.search(preceding) else None
