"""The Rasa HTTP API and the REST channel of a stack under test, as clients use them.

Every reply read through them is checked against the rules of conduct.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from typing import Any

import aiohttp

from bot.domain.conduct import conduct_problems

#: Token of the Rasa HTTP API of the stack under test.
API_TOKEN = os.environ.get("E2E_RASA_TOKEN") or uuid.uuid4().hex


def assert_conduct(replies: list[dict[str, Any]]) -> None:
    """Every reply the tests see must keep to the rules of conduct."""
    for reply in replies:
        problems = conduct_problems(str(reply.get("text") or ""))
        assert not problems, f"reply breaks the rules of conduct: {problems}: {reply}"


# --- the Rasa HTTP API, as the staff console uses it ---------------------------------------


async def tracker_of(rasa_url: str, sender: str) -> dict[str, Any]:
    """The conversation as the Rasa HTTP API returns it."""
    url = f"{rasa_url}/conversations/{urllib.parse.quote(sender, safe='')}/tracker"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"token": API_TOKEN}) as response:
            assert response.status == 200
            return await response.json()


async def staff_reply(rasa_url: str, sender: str, text: str) -> None:
    """What the staff console sends through Rasa's HTTP API."""
    url = f"{rasa_url}/conversations/{urllib.parse.quote(sender, safe='')}/tracker/events"
    params = {"token": API_TOKEN, "output_channel": "latest", "execute_side_effects": "true"}
    body = [{"event": "bot", "text": text, "metadata": {"staff": "李专员", "handoff": "test"}}]
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params=params, json=body) as response:
            assert response.status == 200, await response.text()


async def resume(rasa_url: str, sender: str) -> list[dict[str, Any]]:
    """Run the resume action as the console does after closing; the bot's messages."""
    url = f"{rasa_url}/conversations/{urllib.parse.quote(sender, safe='')}/execute"
    params = {"token": API_TOKEN, "output_channel": "latest"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, params=params, json={"name": "action_handoff_resume"}
        ) as response:
            assert response.status == 200, await response.text()
            messages: list[dict[str, Any]] = (await response.json()).get("messages", [])
    assert_conduct(messages)
    return messages


# --- the REST channel, as a debtor's client uses it -----------------------------------------


async def staff_messages(rasa_url: str, sender: str, after: float = 0) -> list[dict[str, Any]]:
    """Staff replies as a REST client polls for them."""
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{rasa_url}/webhooks/rest/staff_messages",
            params={"sender": sender, "after": str(after)},
        ) as response:
            assert response.status == 200
            return await response.json()


class RestClient:
    """Talks to the REST channel as one debtor (one sender id)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = f"{url}/webhooks/rest/webhook"
        self.sender = f"e2e-{uuid.uuid4().hex}"

    async def say(self, message: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        payload = {"sender": self.sender, "message": message}
        async with self._session.post(
            self._url, json=payload, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            assert response.status == 200, await response.text()
            replies: list[dict[str, Any]] = await response.json()
        assert_conduct(replies)
        return replies
