"""What a debtor asks for, read from their words when the intent says only "inform".

A message that carries identity details or figures ("查下我欠了多少 王芳 4321 …",
"做生意赔了 一个月六千收入 想协商下") is often classified as `inform`: the request
in it would be lost once verification is done. These words name the request
so that it is carried out after verification.
"""

from __future__ import annotations

import re

from bot.domain.normalize import normalize_text

#: Most specific first: a message asking both to negotiate and for the balance negotiates.
_REQUESTS = (
    ("ask_repayment_plan", re.compile(r"还款计划|还款安排|每期还多少|还有几期")),
    (
        "request_negotiation",
        re.compile(
            r"协商|分期|停息|挂账|延期|展期|减免|免息|方案|怎么还|还不上|还不起|缴不出|还款困难"
        ),
    ),
    (
        "ask_account_status",
        re.compile(r"欠了?多少|欠款|欠几多|逾期了?多少|逾期多久|还要还多少|一共要还|还欠多少"),
    ),
)


def request_in(text: str) -> str | None:
    """The request the words of `text` make (an intent name), or None."""
    normalized = normalize_text(text or "")
    for intent, words in _REQUESTS:
        if words.search(normalized):
            return intent
    return None
