"""Short-lived state of the WeChat channel, shared by all Rasa instances through Redis.

Four kinds of keys live here: the signature of each request accepted
(`wechat_replay`: a replayed request is refused), the de-duplication record
of each inbound message (WeChat retries a message it got no answer to), the
buttons last shown to each user (so that a numbered reply can pick one), and
the account's access token with the lock of whoever is fetching a new one
(`wechat_api`). All expire by themselves.

What happens when Redis cannot be reached depends on the profile
(`bot.profile.scale_profile`):

- Scale profile (`BOT_PROFILE=scale`, several replicas behind a load
  balancer): no fallback. The error is logged (once per outage; once more when
  Redis is back) and every call raises `SharedStoreUnavailable`; Redis is tried
  again at the next call. State kept in one replica would silently break
  the replay guard, de-duplication and the shared token (fail closed: a
  replica of its own would accept what another already accepted), so the
  channel answers 503 instead and WeChat delivers the message again later
  (see `bot.rasa_ext.channels.wechat`).
- Otherwise (one process): the store falls back to a dictionary in this
  process and says so in the log; the channel keeps working. Redis is tried
  again `retry_after` seconds (default 30) after it failed, and used again as
  soon as it answers (logged once). Keys written to the dictionary while Redis
  was down stay there only: they are not copied to Redis, and once Redis is
  back they are not read any more (signatures, de-duplication records,
  buttons and a token of the outage are forgotten, which costs at most a
  request of the outage accepted once more, a repeated turn, a number taken
  literally or one more token fetch). They are seen again should Redis
  fail again before they expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.profile import scale_profile
from bot.rasa_ext.log_masking import masked_url

logger = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds after a Redis failure before a single process tries Redis again.
DEFAULT_RETRY_AFTER = 30.0

_T = TypeVar("_T")

#: Compare-and-delete in one step: nobody else's lock is released by mistake.
_DELETE_IF = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class MemoryStore:
    """Keys with expiry in this process: the fallback when Redis is unreachable."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}
        self._writes = 0

    def _purge(self) -> None:
        self._writes += 1
        if self._writes % 1000 == 0:
            now = time.monotonic()
            for key in [k for k, (_, expiry) in self._values.items() if expiry <= now]:
                del self._values[key]

    async def get(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None or item[1] <= time.monotonic():
            return None
        return item[0]

    async def set(self, key: str, value: str, ttl: float, *, only_new: bool = False) -> bool:
        self._purge()
        if only_new and await self.get(key) is not None:
            return False
        self._values[key] = (value, time.monotonic() + ttl)
        return True

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def delete_if(self, key: str, value: str) -> bool:
        """Delete `key` only while it holds `value` (releasing a lock one owns)."""
        if await self.get(key) != value:
            return False
        del self._values[key]
        return True


class SharedStoreUnavailable(RuntimeError):
    """Redis cannot be reached in the scale profile, where there is no fallback."""


class SharedStore:
    """Redis at `url`; when it fails, an error (scale profile) or a `MemoryStore`.

    `scale` overrides `bot.profile.scale_profile()` (read once, here);
    `retry_after` is how long a single process keeps to its `MemoryStore`
    before it tries Redis again. See the module documentation.
    """

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        scale: bool | None = None,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self.url = url
        self.scale = scale_profile() if scale is None else scale
        self.retry_after = retry_after
        self._redis: Any = None
        self._fallback: MemoryStore | None = None
        self._down = False
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def uses_redis(self) -> bool:
        """False while Redis is down (single process: while the `MemoryStore` is in use)."""
        return not self._down

    def _failed(self, error: Exception) -> MemoryStore:
        """Record a Redis failure: raise in the scale profile, else the fallback to use."""
        first = not self._down
        self._down = True
        if self.scale:
            log = logger.error if first else logger.debug
            log(
                "WeChat channel: Redis at %s is unavailable (%s); BOT_PROFILE=scale has no "
                "fallback, messages are refused until it is back",
                masked_url(self.url),
                error,
            )
            raise SharedStoreUnavailable(
                f"Redis at {masked_url(self.url)} is unavailable: {error}"
            ) from error
        self._retry_at = time.monotonic() + self.retry_after
        if first:
            logger.warning(
                "WeChat channel: Redis at %s is unreachable (%s); keeping de-duplication, "
                "button state and the access token in this process only, trying Redis "
                "again in %g s",
                masked_url(self.url),
                error,
                self.retry_after,
            )
        if self._fallback is None:
            self._fallback = MemoryStore()
        return self._fallback

    def _try_redis(self) -> bool:
        """Whether this call goes to Redis (always in the scale profile)."""
        if not self._down or self.scale:
            return True
        if time.monotonic() < self._retry_at:
            return False
        # One caller tries; the others keep to the fallback meanwhile.
        self._retry_at = time.monotonic() + self.retry_after
        return True

    def _back(self) -> None:
        if self._down:
            self._down = False
            logger.info(
                "WeChat channel: Redis at %s is reachable again; using it", masked_url(self.url)
            )

    async def _client(self) -> Any:
        if self._redis is None:
            async with self._lock:
                if self._redis is None:
                    client = aioredis.from_url(
                        self.url,
                        decode_responses=True,
                        socket_connect_timeout=1,
                        socket_timeout=2,
                    )
                    try:
                        await client.ping()
                    except BaseException:
                        await client.close(close_connection_pool=True)
                        raise
                    self._redis = client
        return self._redis

    async def _call(
        self,
        on_redis: Callable[[Any], Awaitable[_T]],
        on_memory: Callable[[MemoryStore], Awaitable[_T]],
    ) -> _T:
        if not self._try_redis():
            assert self._fallback is not None
            return await on_memory(self._fallback)
        try:
            result = await on_redis(await self._client())
        except (RedisError, OSError) as error:
            return await on_memory(self._failed(error))
        self._back()
        return result

    async def get(self, key: str) -> str | None:
        async def on_redis(client: Any) -> str | None:
            value = await client.get(key)
            return None if value is None else str(value)

        return await self._call(on_redis, lambda memory: memory.get(key))

    async def set(self, key: str, value: str, ttl: float, *, only_new: bool = False) -> bool:
        """Set `key` for `ttl` seconds; with `only_new`, only if it is not set (SET NX)."""

        async def on_redis(client: Any) -> bool:
            done = await client.set(key, value, px=max(1, int(ttl * 1000)), nx=only_new)
            return bool(done)

        return await self._call(
            on_redis, lambda memory: memory.set(key, value, ttl, only_new=only_new)
        )

    async def delete(self, key: str) -> None:
        async def on_redis(client: Any) -> None:
            await client.delete(key)

        await self._call(on_redis, lambda memory: memory.delete(key))

    async def delete_if(self, key: str, value: str) -> bool:
        """Delete `key` only while it holds `value` (atomically, with a Lua script)."""

        async def on_redis(client: Any) -> bool:
            return bool(await client.eval(_DELETE_IF, 1, key, value))

        return await self._call(on_redis, lambda memory: memory.delete_if(key, value))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
            self._redis = None
