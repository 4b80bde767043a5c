"""Hostile, empty and odd messages get a clear reply, never an error or a hang."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from tests.support.conversations import FORBIDDEN_EVERYWHERE, reply_text

pytestmark = pytest.mark.e2e

#: The replies a message the bot cannot use may get: the fallback, out of
#: scope, or a reply that says what the bot can do, with an example.
CLEAR_REPLIES = [
    "没有理解您的意思",  # utter_default
    "超出了我能处理的范围",  # utter_out_of_scope
    "我可以解答逾期",  # utter_greet
    "如果您想查询欠款或申请协商还款",  # utter_inform_ack
    "我需要先核实您的身份",  # utter_verification_intro
    "请先说“我想协商还款”",  # utter_choose_plan_needs_offer ("1 OR 1=1" reads as "选1")
]


async def assert_clear_reply(client, message: object) -> str:
    replies = await asyncio.wait_for(client.say(message), timeout=30)
    text = reply_text(replies)
    assert text, f"no reply to {message!r}"
    assert not any(re.search(pattern, text) for pattern in FORBIDDEN_EVERYWHERE), text
    return text


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("😀😀😀🙏", id="only-emoji"),
        pytest.param("？？？！！！。。。……", id="only-punctuation"),
        pytest.param("Hello, can you tell me the weather in London?", id="english"),
        pytest.param("'; DROP TABLE debtors; --", id="sql"),
        pytest.param("1 OR 1=1; SELECT * FROM accounts", id="sql-select"),
        pytest.param("asdfghjkl qwerty", id="gibberish"),
    ],
)
async def test_unusable_message_gets_a_clear_reply(client, message: str) -> None:
    text = await assert_clear_reply(client, message)
    assert any(clear in text for clear in CLEAR_REPLIES), text


async def test_html_is_not_echoed_back(client) -> None:
    text = await assert_clear_reply(client, "<script>alert('x')</script><b>你好</b>")
    assert "<script>" not in text


async def test_empty_message_gets_a_reply(client) -> None:
    await assert_clear_reply(client, "")


async def test_whitespace_message_gets_a_reply(client) -> None:
    await assert_clear_reply(client, "   \n\t ")


async def test_five_thousand_characters_get_a_reply_in_time(client) -> None:
    long_message = ("我想问一下逾期的事情，" * 500)[:5000]
    text = await assert_clear_reply(client, long_message)
    assert text


async def test_the_conversation_goes_on_after_bad_input(client) -> None:
    await assert_clear_reply(client, "'; DROP TABLE debtors; --")
    text = await assert_clear_reply(client, "逾期会影响征信吗")
    assert "征信" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"sender": "e2e-bad", "message": 123}, "message", id="number-message"),
        pytest.param({"sender": "e2e-bad", "message": {"a": 1}}, "message", id="object-message"),
        pytest.param({"sender": "e2e-bad", "message": "逾" * 20_001}, "message", id="huge"),
        pytest.param({"message": "你好"}, "sender", id="no-sender"),
        pytest.param({"sender": "", "message": "你好"}, "sender", id="empty-sender"),
        pytest.param({"sender": "x" * 129, "message": "你好"}, "sender", id="long-sender"),
        pytest.param({"sender": ["x"], "message": "你好"}, "sender", id="list-sender"),
        # Another channel's conversation: REST may neither write into it nor read it.
        pytest.param({"sender": "wechat:oAbc123", "message": "我欠多少"}, "sender", id="wechat-id"),
        pytest.param(
            {"sender": f"{'a' * 32}.{'b' * 32}", "message": "我欠多少"}, "sender", id="webchat-id"
        ),
        pytest.param(["not", "an", "object"], "JSON object", id="list-body"),
    ],
)
async def test_malformed_request_gets_400_naming_the_field(rasa_url, body, field) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{rasa_url}/webhooks/rest/webhook", json=body) as response:
            assert response.status == 400
            assert field in await response.text()


@pytest.mark.parametrize("sender", ["wechat:oAbc123", f"{'a' * 32}.{'b' * 32}", "", "x" * 129])
async def test_staff_messages_of_other_channels_cannot_be_read(rasa_url, sender) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{rasa_url}/webhooks/rest/staff_messages", params={"sender": sender}
        ) as response:
            assert response.status == 400
            assert "sender" in await response.text()


async def test_body_that_is_not_json_gets_400(rasa_url) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{rasa_url}/webhooks/rest/webhook",
            data="{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400


async def test_null_message_is_an_empty_message(client) -> None:
    await assert_clear_reply(client, None)
