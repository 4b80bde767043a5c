"""Requests read from the words of a message the NLU took for plain information."""

from __future__ import annotations

import pytest

from bot.domain.requests import request_in


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("查下我欠了多少 王芳 4321 13700137002", "ask_account_status"),
        ("做生意赔了 现在一个月就六千收入 想跟你们协商下怎么还", "request_negotiation"),
        ("张伟 1234 13800138000 我要办分期", "request_negotiation"),
        ("幫我查下欠幾多 黎嘉欣 5521 13711223344", "ask_account_status"),
        ("李娜 5678 13900139001 看下我的还款计划", "ask_repayment_plan"),
        ("欠款多少 想协商一下", "request_negotiation"),
        ("张伟 1234 13800138000", None),
        ("一个月四千", None),
        ("", None),
    ],
)
def test_request_in(text: str, asked: str | None) -> None:
    assert request_in(text) == asked
