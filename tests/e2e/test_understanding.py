"""Debtors' own wording of the critical messages, against the running stack and its records.

The conversations of `tests/conversations/understanding/` are the classes of
message the assistant misread before (cannot pay read as will not, complaints
read as questions, hardship and distress without the usual words, indirect
requests for a person); the tests below also read what they left in the
database: a complaint is a case, "cannot pay" is never a collections referral.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_escalation import only_case, referrals
from tests.support.conversations import CONVERSATIONS_DIR, play, reply_text
from tests.support.rasa_api import RestClient
from tests.support.records import handoff_cases

pytestmark = pytest.mark.e2e

UNDERSTANDING = CONVERSATIONS_DIR / "understanding"


@pytest.mark.dialogue
@pytest.mark.parametrize("path", sorted(UNDERSTANDING.glob("*.yml")), ids=lambda p: p.stem)
async def test_understanding(client: RestClient, path) -> None:
    await play(client, path)


async def test_cannot_pay_never_leads_to_collections(client: RestClient, database_url: str) -> None:
    await play(client, UNDERSTANDING / "cannot_pay_is_not_refusal.yml")
    assert referrals(database_url, client.sender) == []
    assert handoff_cases(database_url, client.sender) == []


@pytest.mark.parametrize(
    "complaint",
    [
        "你们催收的天天打我爸妈电话 还跟我单位领导说我是老赖",
        "催收的说我再不还就上门 还说要抓我去坐牢",
        "一天打二十几个电话 我班都没法上了",
        "有个自称法院的人打电话说要冻结我所有账户 是不是你们安排的",
        "我的身份证号和欠款被发到我同事群里了 谁干的",
    ],
)
async def test_a_complaint_about_collection_conduct_is_a_case(
    client: RestClient, database_url: str, complaint: str
) -> None:
    text = reply_text(await client.say(complaint))
    assert "12378" in text
    case = only_case(database_url, client.sender)
    assert case["reason"] == "complaint"
    assert complaint in json.loads(case["summary"])["debtor_words"]


@pytest.mark.parametrize(
    "wording", ["能不能别让程序回复 找个员工跟我聊", "找你们协商部门的人跟我谈", "有没有活人啊"]
)
async def test_an_indirect_request_for_a_person(
    client: RestClient, database_url: str, wording: str
) -> None:
    text = reply_text(await client.say(wording))
    case = only_case(database_url, client.sender)
    assert case["reason"] == "request_human"
    assert case["reference"] in text
