"""Short-lived state of the WeChat channel, shared by all Rasa instances through Redis.

Three kinds of keys live here: the de-duplication record of each inbound
message (WeChat retries a message it got no answer to), the buttons last shown
to each user (so that a numbered reply can pick one), and the account's access
token with the lock of whoever is fetching a new one (`wechat_api`). All expire
by themselves. When Redis cannot be reached the store falls back to a
dictionary in this process and says so in the log: the channel keeps working,
but retries that reach another instance are no longer recognised and each
instance fetches its own access token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

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


class SharedStore:
    """Redis at `url`, or a `MemoryStore` once Redis has failed (with a warning)."""

    def __init__(self, url: str = DEFAULT_REDIS_URL) -> None:
        self.url = url
        self._redis: Any = None
        self._fallback: MemoryStore | None = None
        self._lock = asyncio.Lock()

    @property
    def uses_redis(self) -> bool:
        return self._fallback is None

    def _fall_back(self, error: Exception) -> MemoryStore:
        if self._fallback is None:
            logger.warning(
                "WeChat channel: Redis at %s is unreachable (%s); keeping de-duplication, "
                "button state and the access token in this process only",
                self.url,
                error,
            )
            self._fallback = MemoryStore()
        return self._fallback

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
                    await client.ping()
                    self._redis = client
        return self._redis

    async def get(self, key: str) -> str | None:
        if self._fallback is None:
            try:
                value = await (await self._client()).get(key)
                return None if value is None else str(value)
            except (RedisError, OSError) as error:
                self._fall_back(error)
        assert self._fallback is not None
        return await self._fallback.get(key)

    async def set(self, key: str, value: str, ttl: float, *, only_new: bool = False) -> bool:
        """Set `key` for `ttl` seconds; with `only_new`, only if it is not set (SET NX)."""
        if self._fallback is None:
            try:
                client = await self._client()
                done = await client.set(key, value, px=max(1, int(ttl * 1000)), nx=only_new)
                return bool(done)
            except (RedisError, OSError) as error:
                self._fall_back(error)
        assert self._fallback is not None
        return await self._fallback.set(key, value, ttl, only_new=only_new)

    async def delete(self, key: str) -> None:
        if self._fallback is None:
            try:
                await (await self._client()).delete(key)
                return
            except (RedisError, OSError) as error:
                self._fall_back(error)
        assert self._fallback is not None
        await self._fallback.delete(key)

    async def delete_if(self, key: str, value: str) -> bool:
        """Delete `key` only while it holds `value` (atomically, with a Lua script)."""
        if self._fallback is None:
            try:
                done = await (await self._client()).eval(_DELETE_IF, 1, key, value)
                return bool(done)
            except (RedisError, OSError) as error:
                self._fall_back(error)
        assert self._fallback is not None
        return await self._fallback.delete_if(key, value)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
            self._redis = None
