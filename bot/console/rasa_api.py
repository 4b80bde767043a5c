"""The few calls the console makes to the Rasa server's HTTP API.

A staff reply is appended to the conversation as a `bot` event (sent on the
debtor's latest channel); closing a case runs `action_handoff_resume`, which
gives the conversation back to the assistant and tells the debtor.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import aiohttp
from yarl import URL

logger = logging.getLogger(__name__)

RESUME_ACTION = "action_handoff_resume"


class RasaError(Exception):
    """Rasa could not be reached or did not accept the request."""


class RasaClient:
    """A client of one Rasa server; `start` and `close` bracket its HTTP session."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session (on the application's event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, conversation_id: str, endpoint: str, **query: str) -> URL:
        path = f"/conversations/{urllib.parse.quote(conversation_id, safe='')}/{endpoint}"
        if self.token:
            query["token"] = self.token
        return URL(self.base_url + path, encoded=True).with_query(query)

    async def _post(self, url: URL, body: Any) -> None:
        if self._session is None:
            raise RasaError("the Rasa client is not started")
        try:
            async with self._session.post(url, json=body) as response:
                if not 200 <= response.status < 300:
                    detail = (await response.text())[:200]
                    raise RasaError(f"Rasa answered {response.status}: {detail}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            # Not the error's text: it may quote the URL, token included.
            raise RasaError(f"Rasa unreachable: {type(error).__name__}") from None

    async def send_staff_message(
        self, conversation_id: str, text: str, staff_name: str, reference: str
    ) -> None:
        """Send `text` to the debtor as a bot message marked as written by staff."""
        url = self._url(
            conversation_id,
            "tracker/events",
            output_channel="latest",
            execute_side_effects="true",
        )
        event = {
            "event": "bot",
            "text": text,
            "metadata": {"staff": staff_name, "handoff": reference},
        }
        await self._post(url, [event])

    async def resume(self, conversation_id: str) -> None:
        """Run `action_handoff_resume` in the conversation."""
        url = self._url(conversation_id, "execute", output_channel="latest")
        await self._post(url, {"name": RESUME_ACTION})
