"""Fixtures that start the real action server and Rasa server once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from bot.stack import Stack, StackConfig


@pytest.fixture(scope="session")
def rasa_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running stack: E2E_RASA_URL if set, else one started for the tests."""
    existing = os.environ.get("E2E_RASA_URL")
    if existing:
        yield existing.rstrip("/")
        return
    config = StackConfig(
        rasa_port=int(os.environ.get("E2E_RASA_PORT", 15005)),
        action_port=int(os.environ.get("E2E_ACTION_PORT", 15055)),
        auth_token=uuid.uuid4().hex,
        extra_env={"TRACKER_DB": str(tmp_path_factory.mktemp("stack") / "tracker.db")},
    )
    with Stack(config) as stack:
        yield stack.config.rasa_url


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
            return await response.json()


@pytest.fixture
async def client(rasa_url: str) -> Any:
    async with aiohttp.ClientSession() as session:
        yield RestClient(session, rasa_url)
