"""The parts of the WeChat server API the channel uses: access tokens and customer-service messages.

The access token is fetched with the app id and secret, kept until five
minutes before it expires, and fetched again at once when WeChat says it is
invalid or expired (errcode 40001, 40014, 42001); the message is then sent once
more with the fresh token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
#: WeChat's answers for a token that is invalid, malformed or expired.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
#: A token is renewed this many seconds before WeChat lets it expire.
TOKEN_MARGIN = 300.0


class WeChatApiError(RuntimeError):
    """WeChat refused a request or could not be reached."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


class WeChatApi:
    """Access token and customer-service messages of one official account."""

    def __init__(
        self, app_id: str, app_secret: str, base: str = DEFAULT_API_BASE, timeout: float = 10.0
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.base = base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock: asyncio.Lock | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._client().request(method, url, **kwargs) as response:
                if response.status != 200:
                    raise WeChatApiError(f"{method} {url.split('?')[0]}: HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            raise WeChatApiError(f"{method} {url.split('?')[0]}: {error!r}") from error
        if not isinstance(body, dict):
            raise WeChatApiError(f"{method} {url.split('?')[0]}: unexpected answer")
        return body

    async def access_token(self, *, refresh: bool = False, stale: str | None = None) -> str:
        """A valid access token; with `refresh`, a new one (unless `stale` was replaced already)."""
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            replaced = stale is not None and self._token != stale
            if self._token and (not refresh or replaced) and time.monotonic() < self._token_expires:
                return self._token
            body = await self._json(
                "GET",
                f"{self.base}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.app_id,
                    "secret": self.app_secret,
                },
            )
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise WeChatApiError(
                    f"no access token: errcode {body.get('errcode')} {body.get('errmsg', '')}",
                    errcode=body.get("errcode"),
                )
            expires_in = float(body.get("expires_in") or 7200)
            self._token = token
            self._token_expires = time.monotonic() + max(0.0, expires_in - TOKEN_MARGIN)
            return token

    async def send_text(self, openid: str, content: str) -> None:
        """Send one customer-service text message to `openid`."""
        payload = {"touser": openid, "msgtype": "text", "text": {"content": content}}
        token = await self.access_token()
        for attempt in (1, 2):
            body = await self._json(
                "POST",
                f"{self.base}/cgi-bin/message/custom/send",
                params={"access_token": token},
                # WeChat wants the Chinese characters as they are, not \\u escapes.
                data=_dumps(payload),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            errcode = int(body.get("errcode") or 0)
            if errcode == 0:
                return
            if errcode in TOKEN_ERRORS and attempt == 1:
                logger.info(
                    "WeChat access token rejected (errcode %s): fetching a new one", errcode
                )
                token = await self.access_token(refresh=True, stale=token)
                continue
            raise WeChatApiError(
                f"customer-service message refused: errcode {errcode} {body.get('errmsg', '')}",
                errcode=errcode,
            )


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
