"""Verification lasts for one conversation session; a new session asks again."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.conversations import reply_text
from tests.support.rasa_api import API_TOKEN

pytestmark = pytest.mark.e2e


async def test_a_new_session_asks_for_verification_again(client, rasa_url: str) -> None:
    reply = reply_text(await client.say("我欠了多少钱"))
    assert "姓名" in reply
    reply = reply_text(await client.say("我叫刘洋，身份证后四位8765，手机13600136003"))
    assert "核实成功" in reply and "3,045.00" in reply
    assert "3,045.00" in reply_text(await client.say("我现在欠多少"))

    # What Rasa does after the session expiry time without a message.
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{rasa_url}/conversations/{client.sender}/execute",
            params={"token": API_TOKEN},
            json={"name": "action_session_start"},
        ) as response:
            assert response.status == 200, await response.text()

    reply = reply_text(await client.say("我现在欠多少"))
    assert "姓名" in reply
    assert "3,045.00" not in reply


async def test_the_http_api_needs_the_token(rasa_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{rasa_url}/model/parse", json={"text": "你好"}) as response:
            assert response.status == 401
        async with session.post(
            f"{rasa_url}/model/parse", params={"token": API_TOKEN}, json={"text": "你好"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["intent"]["name"] == "greet"


async def test_verification_lasts_past_the_tracker_window(client) -> None:
    """The tracker store loads 60 events; a verified debtor stays verified long after."""
    await client.say("我欠了多少钱")
    reply = reply_text(await client.say("我叫陈静，身份证后四位0026，手机13500135004"))
    assert "核实成功" in reply
    for _ in range(25):  # about 100 events: far beyond the window
        assert "征信" in reply_text(await client.say("逾期会影响征信吗"))
    reply = reply_text(await client.say("我现在欠多少"))
    assert "55,600.00" in reply
    assert "姓名" not in reply
