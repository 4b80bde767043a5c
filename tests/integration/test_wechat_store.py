"""The WeChat channel's `SharedStore` when Redis fails, against the real local Redis.

A port where nothing listens plays Redis being down; recovery is played by
pointing the store at the real Redis (the next connection it opens goes
there). Keys are per test and deleted at the end. Without the local Redis these
tests fail: it is part of the product's scale profile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.rasa_ext.channels.wechat_replay import Admission, NonceGuard
from bot.rasa_ext.channels.wechat_store import SharedStore, SharedStoreUnavailable

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def prefix() -> str:
    """The start of this test's keys."""
    return f"wechat:test-store:{uuid.uuid4().hex}"


@pytest.fixture
async def redis(prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A raw client of the real Redis; the test's keys are deleted at the end."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        await client.close()
        pytest.fail(f"no Redis at {REDIS_URL}: {error}")
    try:
        yield client
    finally:
        keys = await client.keys(f"{prefix}:*")
        if keys:
            await client.delete(*keys)
        await client.close()


async def test_scale_profile_without_redis_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    store = SharedStore(UNREACHABLE)
    assert store.scale
    with caplog.at_level(logging.DEBUG, logger="bot.rasa_ext.channels.wechat_store"):
        for call in (
            store.set("k", "v", 60, only_new=True),
            store.get("k"),
            store.delete("k"),
            store.delete_if("k", "v"),
        ):
            with pytest.raises(SharedStoreUnavailable, match="unavailable"):
                await call
    assert issubclass(SharedStoreUnavailable, RuntimeError)
    assert not store.uses_redis
    # Logged once per outage at ERROR, the rest at DEBUG; no memory fallback.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "BOT_PROFILE=scale" in errors[0].getMessage()
    assert store._fallback is None
    await store.close()


async def test_scale_profile_uses_redis_again_at_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redis: aioredis.Redis,
    prefix: str,
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    key = f"{prefix}:msg:1"
    store = SharedStore(UNREACHABLE, retry_after=3600)
    with pytest.raises(SharedStoreUnavailable):
        await store.set(key, "pending", 60, only_new=True)
    store.url = REDIS_URL  # Redis is back: no waiting for `retry_after` in this profile.
    with caplog.at_level(logging.INFO, logger="bot.rasa_ext.channels.wechat_store"):
        assert await store.set(key, "pending", 60, only_new=True)
        assert not await store.set(key, "again", 60, only_new=True)
    assert store.uses_redis
    assert await redis.get(key) == "pending"
    assert caplog.text.count("reachable again") == 1
    await store.close()


async def test_default_profile_without_redis_falls_back_to_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    store = SharedStore(UNREACHABLE)
    assert not store.scale
    with caplog.at_level(logging.WARNING, logger="bot.rasa_ext.channels.wechat_store"):
        assert await store.set("k", "v", 60, only_new=True)
        assert not await store.set("k", "w", 60, only_new=True)
        assert await store.get("k") == "v"
        assert not await store.delete_if("k", "w")
        assert await store.delete_if("k", "v")
        assert await store.get("k") is None
    assert not store.uses_redis
    assert caplog.text.count("unreachable") == 1
    await store.close()


async def test_default_profile_tries_redis_again_after_the_interval(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redis: aioredis.Redis,
    prefix: str,
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    during, after = f"{prefix}:during", f"{prefix}:after"
    store = SharedStore(UNREACHABLE, retry_after=0.5)
    with caplog.at_level(logging.INFO, logger="bot.rasa_ext.channels.wechat_store"):
        assert await store.set(during, "memory", 60)
        assert not store.uses_redis
        store.url = REDIS_URL  # Redis comes back ...
        # ... but within the interval the store keeps to its memory.
        assert await store.set(after, "too-early", 60)
        assert await store.get(after) == "too-early"
        assert await redis.exists(during, after) == 0
        await asyncio.sleep(0.6)
        assert await store.set(after, "redis", 60, only_new=True)
        assert store.uses_redis
        assert await redis.get(after) == "redis"
        assert await store.get(after) == "redis"
        # What was written during the outage stayed in memory only.
        assert await redis.exists(during) == 0
        assert await store.get(during) is None
    assert caplog.text.count("unreachable") == 1
    assert caplog.text.count("reachable again") == 1
    await store.close()


async def test_default_profile_falls_back_again_and_keeps_retrying(
    monkeypatch: pytest.MonkeyPatch, redis: aioredis.Redis, prefix: str
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    key = f"{prefix}:k"
    store = SharedStore(UNREACHABLE, retry_after=0.2)
    assert await store.set(key, "memory", 60)
    await asyncio.sleep(0.3)
    # Still down at the retry: the memory is used again, and the next retry is later.
    assert await store.get(key) == "memory"
    assert not store.uses_redis
    store.url = REDIS_URL
    await asyncio.sleep(0.3)
    assert await store.get(key) is None
    assert store.uses_redis
    await store.close()


async def test_replicas_racing_for_one_signature_admit_it_once(
    monkeypatch: pytest.MonkeyPatch, redis: aioredis.Redis, prefix: str
) -> None:
    """SET NX in Redis: of many replicas seeing one signature at once, one accepts it."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    now = 1_800_000_000.0
    stores = [SharedStore(REDIS_URL) for _ in range(4)]
    guards = [NonceGuard(store, prefix, 300.0, lambda: now) for store in stores]
    args = {"signature": uuid.uuid4().hex, "timestamp": str(int(now) - 10), "nonce": "1"}
    verdicts = await asyncio.gather(
        *(guard.admit(args, f"{prefix}:msg:1") for guard in guards for _ in range(5))
    )
    assert verdicts.count(Admission.FIRST) == 1
    assert set(verdicts) == {Admission.FIRST, Admission.REPEAT}
    assert await guards[0].admit(args, f"{prefix}:msg:2") is Admission.REPLAY
    # Until the timestamp leaves the window (290 s) and the margin for the clocks.
    key = f"wechat:{prefix}:nonce:{args['signature']}"
    try:
        assert 340 <= await redis.ttl(key) <= 350
    finally:
        await redis.delete(key)
        for store in stores:
            await store.close()
