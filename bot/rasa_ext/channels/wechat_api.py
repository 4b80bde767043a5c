"""The parts of the WeChat server API the channel uses: access tokens, customer-service and
template messages.

The access token is fetched with the app id and secret, kept until five
minutes before it expires, and fetched again at once when WeChat says it is
invalid or expired (errcode 40001, 40014, 42001); the message is then sent once
more with the fresh token.

WeChat invalidates an account's previous token shortly after a new one is
fetched, so all Rasa instances share one token: it lives in the `SharedStore`
(Redis) under `wechat:token:<app id>`, and only the instance holding the lock
`wechat:token:<app id>:lock` (SET NX PX with a random owner, released by
compare-and-delete, expiring by itself if its holder dies) fetches a new one;
the others poll the key and use what it stored. Only the token goes to Redis,
never the app secret. When Redis is unreachable the store keeps both in this
process; in the scale profile (`BOT_PROFILE=scale`) it raises
`SharedStoreUnavailable` instead, and no token is fetched: one fetched by a
single replica would invalidate the token all the others share.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

import aiohttp

from bot.rasa_ext.channels.wechat_store import MemoryStore, SharedStore

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
#: WeChat's answers for a token that is invalid, malformed or expired.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
#: A token is renewed this many seconds before WeChat lets it expire.
TOKEN_MARGIN = 300.0
#: How often an instance waiting for another one's new token looks for it (seconds).
TOKEN_POLL = 0.05


class WeChatApiError(RuntimeError):
    """WeChat refused a request or could not be reached."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


class WeChatApi:
    """Access token and customer-service messages of one official account.

    `store` holds the token shared by all instances (see the module
    documentation); without one the token is kept in this process only.
    `lock_ttl` is how long the fetch lock outlives a holder that died (default:
    the request timeout and five seconds), `lock_wait` how long an instance
    waits for the token of another before giving up (default: `lock_ttl` and
    five seconds, so that a dead holder's lock expires first).
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        *,
        store: SharedStore | MemoryStore | None = None,
        lock_ttl: float | None = None,
        lock_wait: float | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.base = base.rstrip("/")
        self.store: SharedStore | MemoryStore = store if store is not None else MemoryStore()
        self.lock_ttl = lock_ttl if lock_ttl is not None else timeout + 5.0
        self.lock_wait = lock_wait if lock_wait is not None else self.lock_ttl + 5.0
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token_lock: asyncio.Lock | None = None

    @property
    def token_key(self) -> str:
        return f"wechat:token:{self.app_id}"

    @property
    def token_lock_key(self) -> str:
        return f"wechat:token:{self.app_id}:lock"

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
        """A valid access token; with `refresh`, a new one (unless `stale` was replaced already).

        Without `stale`, a refresh wants a token other than the one shared when it
        was asked for: one stored meanwhile by another instance will do.
        """
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        # One coroutine of this process at a time; the shared lock is for the other instances.
        async with self._token_lock:
            current = await self.store.get(self.token_key)
            unwanted = (stale if stale is not None else current) if refresh else None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.lock_wait
            while True:
                if current and current != unwanted:
                    return current
                owner = secrets.token_hex(16)
                if await self.store.set(self.token_lock_key, owner, self.lock_ttl, only_new=True):
                    try:
                        # Stored while this instance was waiting for the lock?
                        current = await self.store.get(self.token_key)
                        if current and current != unwanted:
                            return current
                        return await self._fetch_token()
                    finally:
                        await self.store.delete_if(self.token_lock_key, owner)
                if loop.time() >= deadline:
                    raise WeChatApiError(
                        f"no access token: another instance has been fetching one for "
                        f"{self.lock_wait:g} s"
                    )
                await asyncio.sleep(TOKEN_POLL)
                current = await self.store.get(self.token_key)

    async def _fetch_token(self) -> str:
        """A new token from WeChat, stored for all instances until shortly before it expires."""
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
        keep = expires_in - TOKEN_MARGIN
        if keep > 0:
            await self.store.set(self.token_key, token, keep)
        else:
            await self.store.delete(self.token_key)
        logger.info("WeChat access token of %s renewed (kept %.0f s)", self.app_id, max(0, keep))
        return token

    async def send_text(self, openid: str, content: str) -> None:
        """Send one customer-service text message to `openid`."""
        payload = {"touser": openid, "msgtype": "text", "text": {"content": content}}
        await self._post("/cgi-bin/message/custom/send", payload, "customer-service message")

    async def send_template(
        self, openid: str, template_id: str, data: dict[str, str], url: str = ""
    ) -> None:
        """Send one template message (`message/template/send`): `data` fills its fields.

        Unlike customer-service messages, a template message may be sent outside
        the 48 hours after the user's last message.
        """
        payload: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {name: {"value": value} for name, value in data.items()},
        }
        if url:
            payload["url"] = url
        await self._post("/cgi-bin/message/template/send", payload, "template message")

    async def _post(self, path: str, payload: dict[str, Any], what: str) -> None:
        token = await self.access_token()
        for attempt in (1, 2):
            body = await self._json(
                "POST",
                f"{self.base}{path}",
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
                f"{what} refused: errcode {errcode} {body.get('errmsg', '')}",
                errcode=errcode,
            )


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
