"""The few calls the console makes to the Rasa server's HTTP API.

A staff reply is appended to the conversation as a `bot` event (sent on the
debtor's latest channel); closing a case runs `action_handoff_resume`, which
gives the conversation back to the assistant and tells the debtor.

Every call carries `Authorization: Bearer <JWT>`, never a credential in the
URL (URLs end up in access logs): an HS256 token signed with the secret the
Rasa servers are started with (`--jwt-secret`, `RASA_JWT_SECRET`), valid for
`TOKEN_LIFETIME` seconds, minted afresh for each call.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import Any

import aiohttp
import jwt
from yarl import URL

logger = logging.getLogger(__name__)

RESUME_ACTION = "action_handoff_resume"
#: Seconds a token is valid (Rasa allows another three minutes of clock skew).
TOKEN_LIFETIME = 60
#: Rasa's `--jwt-method`.
JWT_ALGORITHM = "HS256"
#: Who the tokens name: Rasa lets the `admin` role act on any conversation.
TOKEN_USER = {"username": "bank-console", "role": "admin"}


#: What RFC 3986 allows in a path segment besides letters, digits and "-._~".
PATH_SAFE = "!$&'()*+,;=:@"


class RasaError(Exception):
    """Rasa could not be reached or did not accept the request."""


def api_token(secret: str, *, now: float | None = None, lifetime: int = TOKEN_LIFETIME) -> str:
    """A short-lived token for Rasa's HTTP API, in the payload Rasa's `requires_auth` reads."""
    if not secret:
        raise ValueError("no secret to sign Rasa API tokens with: set RASA_JWT_SECRET")
    issued = int(time.time() if now is None else now)
    payload = {"user": dict(TOKEN_USER), "iat": issued, "exp": issued + lifetime}
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


class RasaClient:
    """A client of one Rasa server; `start` and `close` bracket its HTTP session.

    `jwt_secret` is the Rasa servers' `--jwt-secret`; empty for a Rasa server
    that authenticates nothing (then no header is sent).
    """

    def __init__(self, base_url: str, jwt_secret: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._jwt_secret = jwt_secret
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
        # Rasa's server (Sanic) matches the path as sent, without decoding it:
        # "webchat%3Aab" is another conversation than "webchat:ab". Characters a
        # path segment may hold are sent as they are; only the others are encoded.
        path = f"/conversations/{urllib.parse.quote(conversation_id, safe=PATH_SAFE)}/{endpoint}"
        return URL(self.base_url + path, encoded=True).with_query(query)

    def _headers(self) -> dict[str, str]:
        if not self._jwt_secret:
            return {}
        return {"Authorization": f"Bearer {api_token(self._jwt_secret)}"}

    async def _post(self, url: URL, body: Any) -> None:
        if self._session is None:
            raise RasaError("the Rasa client is not started")
        try:
            async with self._session.post(url, json=body, headers=self._headers()) as response:
                if not 200 <= response.status < 300:
                    detail = (await response.text())[:200]
                    raise RasaError(f"Rasa answered {response.status}: {detail}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            # Not the error's text: it may quote the request.
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
        await self.execute(conversation_id, RESUME_ACTION)

    async def execute(self, conversation_id: str, action: str) -> None:
        """Run the custom action `action` in the conversation; its replies go to the debtor."""
        url = self._url(conversation_id, "execute", output_channel="latest")
        await self._post(url, {"name": action})
