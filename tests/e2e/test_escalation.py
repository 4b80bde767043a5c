"""Handoffs to a person and referrals to collections, against the running stack.

Each trigger is played as a real conversation; afterwards the handoff case or
collections referral it left is read back from the application database. The
pause is checked on the conversation itself: while a case is open the bot stays
silent, every debtor message is still in the conversation, a staff reply
reaches the debtor's REST client, and closing the case gives the conversation
back to the bot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.store.cases import claim_case, close_case
from bot.store.engine import Database
from tests.support.conversations import CONVERSATIONS_DIR, NOT_UNDERSTOOD, play, reply_text
from tests.support.rasa_api import RestClient, resume, staff_messages, staff_reply, tracker_of
from tests.support.records import add_staff_member, execute, handoff_cases, query

pytestmark = pytest.mark.e2e

ESCALATIONS = CONVERSATIONS_DIR / "escalation"


def referrals(database_url: str, conversation_id: str) -> list[dict[str, Any]]:
    return query(
        database_url,
        "SELECT * FROM collections_referrals WHERE conversation_id = :c ORDER BY id",
        c=conversation_id,
    )


def only_case(database_url: str, conversation_id: str) -> dict[str, Any]:
    cases = handoff_cases(database_url, conversation_id)
    assert len(cases) == 1, cases
    case = cases[0]
    assert case["status"] == "waiting"
    assert case["channel"] == "rest"
    return case


def account_of(database_url: str, name: str) -> dict[str, Any]:
    rows = query(
        database_url,
        "SELECT a.* FROM accounts a JOIN debtors d ON d.id = a.debtor_id WHERE d.full_name = :n",
        n=name,
    )
    assert len(rows) == 1
    return rows[0]


@pytest.fixture
def chen_jing_long_overdue(database_url: str) -> Iterator[None]:
    """陈静's card made an account the policy refers to collections, for one test."""
    account = account_of(database_url, "陈静")
    statement = "UPDATE accounts SET days_past_due = :d, broken_plans = :b WHERE id = :i"
    execute(database_url, statement, d=200, b=1, i=account["id"])
    yield
    execute(
        database_url,
        statement,
        d=account["days_past_due"],
        b=account["broken_plans"],
        i=account["id"],
    )


# --- triggers ------------------------------------------------------------------------------


async def test_distress_gets_the_hotline_before_anything_else(
    client: RestClient, database_url: str
) -> None:
    replies = await client.say("欠了这么多钱我真的不想活了")
    assert "12356" in replies[0]["text"]
    text = reply_text(replies)
    for money_word in ("还款", "欠款金额", "方案", "罚息"):
        assert money_word not in text[: text.index("12356")]
    case = only_case(database_url, client.sender)
    assert case["reason"] == "distress"
    assert case["priority"] == 1
    assert "不想活" in json.loads(case["summary"])["debtor_words"]


async def test_distress_while_waiting_for_a_person_is_answered_at_once(
    client: RestClient, database_url: str
) -> None:
    await client.say("转人工")
    assert only_case(database_url, client.sender)["priority"] == 4
    replies = await client.say("我真的撑不下去了，不想活了")
    assert "12356" in replies[0]["text"]
    assert "优先处理" in reply_text(replies)
    case = only_case(database_url, client.sender)
    assert (case["reason"], case["priority"]) == ("distress", 1)
    # Still held by a person: anything else gets no automatic answer.
    assert await client.say("你好") == []


async def test_a_person_on_request(client: RestClient, database_url: str) -> None:
    text = reply_text(await client.say("转人工"))
    case = only_case(database_url, client.sender)
    assert case["reason"] == "request_human"
    assert case["reference"] in text
    assert await client.say("在吗") == []


async def test_a_person_requested_in_the_middle_of_the_circumstances(
    client: RestClient, database_url: str
) -> None:
    await play(client, ESCALATIONS / "request_human_in_the_form.yml")
    case = only_case(database_url, client.sender)
    assert case["reason"] == "request_human"
    assert case["debtor_id"] is not None
    summary = json.loads(case["summary"])
    assert summary["verified"] is True
    assert summary["accounts"][0]["overdue_total"] == "23560.00"


async def test_a_dispute_puts_collection_on_hold(
    client: RestClient, database_url: str, lift_holds: None
) -> None:
    assert not account_of(database_url, "陈静")["collections_hold"]
    await play(client, ESCALATIONS / "dispute_in_the_form.yml")
    case = only_case(database_url, client.sender)
    assert case["reason"] == "dispute"
    assert case["account_id"] == account_of(database_url, "陈静")["id"]
    assert account_of(database_url, "陈静")["collections_hold"]
    assert json.loads(case["summary"])["held_accounts"] == [case["account_id"]]


async def test_a_complaint_is_recorded_with_its_category(
    client: RestClient, database_url: str
) -> None:
    text = reply_text(await client.say("你们的催收员天天打电话骚扰我家人，我要投诉"))
    assert "12378" in text
    case = only_case(database_url, client.sender)
    assert (case["reason"], case["category"]) == ("complaint", "collection_conduct")


async def test_two_messages_not_understood_in_a_row(client: RestClient, database_url: str) -> None:
    await play(client, ESCALATIONS / "fallback.yml", understood=False)
    assert only_case(database_url, client.sender)["reason"] == "repeated_fallback"


async def test_three_failed_verifications(client: RestClient, database_url: str) -> None:
    await play(client, CONVERSATIONS_DIR / "verification_lockout.yml")
    case = only_case(database_url, client.sender)
    assert case["reason"] == "verification_failed"
    assert case["debtor_id"] is None


async def test_every_offer_declined_and_a_person_wanted(
    client: RestClient, database_url: str
) -> None:
    await play(client, ESCALATIONS / "offers_declined.yml")
    case = only_case(database_url, client.sender)
    assert case["reason"] == "offers_declined"
    summary = json.loads(case["summary"])
    assert summary["offers_shown"][0]["plan"] == "personalized_installment"
    assert summary["circumstances"]["monthly_income"] == "4000.00"


# --- collections -------------------------------------------------------------------------


async def test_a_repeated_refusal_is_referred_to_collections(
    client: RestClient, database_url: str
) -> None:
    await play(client, ESCALATIONS / "refusal_referral.yml")
    [referral] = referrals(database_url, client.sender)
    assert (referral["reason"], referral["status"]) == ("refused_payment", "queued")
    assert handoff_cases(database_url, client.sender) == []
    # Referred is not paused: the bot still answers and the door stays open.
    answer = reply_text(await client.say("逾期会影响征信吗"))
    assert "征信" in answer and NOT_UNDERSTOOD not in answer, answer


async def test_a_marked_account_declining_a_person_is_referred(
    client: RestClient, database_url: str, chen_jing_long_overdue: None
) -> None:
    await play(client, ESCALATIONS / "declined_negotiator.yml")
    [referral] = referrals(database_url, client.sender)
    assert referral["reason"] == "declined_negotiator"
    assert referral["account_id"] == account_of(database_url, "陈静")["id"]


# --- pause and resume --------------------------------------------------------------------


async def test_paused_while_a_person_holds_it_and_resumed_when_closed(
    client: RestClient, database_url: str, rasa_url: str
) -> None:
    await client.say("转人工")
    case = only_case(database_url, client.sender)
    held = ["我还在等", "我这个月只能还五百", "转人工", "你好"]
    for text in held:
        assert await client.say(text) == []
    said = [
        e["text"]
        for e in (await tracker_of(rasa_url, client.sender))["events"]
        if e["event"] == "user"
    ]
    assert said[-len(held) :] == held

    # A person takes the case and answers on the debtor's channel.
    db = Database(database_url)
    try:
        staff = await add_staff_member(db, f"e2e{case['id']}", "李专员", "negotiator")
        await claim_case(db, case["id"], staff)
        await staff_reply(rasa_url, client.sender, "您好，我是协商专员小李，我们来看看您的情况。")
        [message] = await staff_messages(rasa_url, client.sender)
        assert message["text"] == "您好，我是协商专员小李，我们来看看您的情况。"
        assert message["staff"] == "李专员"
        assert await staff_messages(rasa_url, client.sender, after=message["timestamp"]) == []
        assert await client.say("好的谢谢") == []

        # Resuming before the case is closed does nothing.
        assert await resume(rasa_url, client.sender) == []
        assert await client.say("还在吗") == []

        await close_case(db, case["id"], staff, "other", "已电话沟通")
    finally:
        await db.dispose()
    resumed = reply_text(await resume(rasa_url, client.sender))
    assert "智能助手继续为您服务" in resumed
    # The FAQ's own answer, not the fallback (which names the question as an example).
    answer = reply_text(await client.say("逾期会影响征信吗"))
    assert "征信" in answer and NOT_UNDERSTOOD not in answer, answer
