"""The WeChat access token shared by several Rasa instances through the real Redis.

Each `WeChatApi` plays one replica with its own `SharedStore` (its own Redis
connection) on the local Redis; the WeChat server is `FakeWeChatApi`, which
counts the token fetches. Every test has its own app id, so its keys
(`wechat:token:<app id>` and the lock) are its own, and they are deleted at the
end. Redis is part of the product's scale profile: without it these tests fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.rasa_ext.channels.wechat_api import TOKEN_MARGIN, WeChatApi
from bot.rasa_ext.channels.wechat_store import MemoryStore, SharedStore, SharedStoreUnavailable
from tests.support.wechat_fake import APP_SECRET, FakeWeChatApi

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UNREACHABLE = "redis://127.0.0.1:1/0"


@dataclass
class Replicas:
    """The fake WeChat server, a raw Redis client, and `replica()` to start instances."""

    fake: FakeWeChatApi
    redis: aioredis.Redis
    base: str
    replica: Callable[..., WeChatApi]
    apis: list[WeChatApi] = field(default_factory=list)

    @property
    def token_key(self) -> str:
        return f"wechat:token:{self.fake.app_id}"

    @property
    def lock_key(self) -> str:
        return f"{self.token_key}:lock"


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        await client.close()
        pytest.fail(f"no Redis at {REDIS_URL}: {error}")
    fake = FakeWeChatApi(app_id=f"wxtok{uuid.uuid4().hex[:14]}")
    base = await fake.start()
    apis: list[WeChatApi] = []
    stores: list[SharedStore] = []

    def replica(url: str = REDIS_URL, **settings: float) -> WeChatApi:
        store = SharedStore(url)
        stores.append(store)
        api = WeChatApi(fake.app_id, fake.app_secret, base, store=store, **settings)
        apis.append(api)
        return api

    setup = Replicas(fake, client, base, replica, apis)
    try:
        yield setup
    finally:
        for api in apis:
            await api.close()
        for store in stores:
            await store.close()
        await fake.stop()
        await client.delete(setup.token_key, setup.lock_key)
        await client.close()


async def test_two_replicas_fetch_the_token_once(replicas: Replicas) -> None:
    one, two = replicas.replica(), replicas.replica()
    await one.send_text("o-user", "第一条")
    await two.send_text("o-user", "第二条")
    await one.send_text("o-user", "第三条")
    assert replicas.fake.token_calls == 1
    assert replicas.fake.send_calls == 3
    assert replicas.fake.rejected_sends == 0
    assert replicas.fake.sent_to("o-user") == ["第一条", "第二条", "第三条"]
    assert await one.access_token() == await two.access_token()
    assert replicas.fake.token_calls == 1


async def test_the_token_is_kept_until_the_margin_before_it_expires(
    replicas: Replicas,
) -> None:
    token = await replicas.replica().access_token()
    assert await replicas.redis.get(replicas.token_key) == token
    ttl_ms = await replicas.redis.pttl(replicas.token_key)
    expected_ms = (7200 - TOKEN_MARGIN) * 1000
    assert expected_ms - 5000 < ttl_ms <= expected_ms
    # The lock is released once the token is stored.
    assert await replicas.redis.exists(replicas.lock_key) == 0


async def test_a_refresh_by_one_replica_is_used_by_the_other(replicas: Replicas) -> None:
    one, two = replicas.replica(), replicas.replica()
    await one.send_text("o-user", "第一条")
    old = await two.access_token()
    replicas.fake.expire_tokens(40001)
    # The first replica is refused, fetches a new token and sends again.
    await one.send_text("o-user", "第二条")
    assert replicas.fake.token_calls == 2
    assert replicas.fake.rejected_sends == 1
    new = await replicas.redis.get(replicas.token_key)
    assert new and new != old
    # The second one had the old token in hand when it was refused as well: it
    # takes the new token without a fetch of its own.
    assert await two.access_token(refresh=True, stale=old) == new
    await two.send_text("o-user", "第三条")
    assert replicas.fake.token_calls == 2
    assert replicas.fake.rejected_sends == 1
    assert replicas.fake.sent_to("o-user") == ["第一条", "第二条", "第三条"]


async def test_replicas_refused_at_the_same_time_fetch_one_new_token(
    replicas: Replicas,
) -> None:
    one, two = replicas.replica(), replicas.replica()
    await one.send_text("o-a", "你好")
    replicas.fake.expire_tokens(42001)
    await asyncio.gather(one.send_text("o-a", "一"), two.send_text("o-b", "二"))
    assert replicas.fake.token_calls == 2
    assert replicas.fake.rejected_sends == 2
    assert replicas.fake.sent_to("o-a") == ["你好", "一"]
    assert replicas.fake.sent_to("o-b") == ["二"]


async def test_concurrent_requests_of_two_replicas_fetch_once(replicas: Replicas) -> None:
    one, two = replicas.replica(), replicas.replica()
    tokens = await asyncio.gather(*(api.access_token() for api in (one, two) * 5))
    assert replicas.fake.token_calls == 1
    assert len(set(tokens)) == 1
    assert await replicas.redis.get(replicas.token_key) == tokens[0]


async def test_a_refresh_without_stale_token_fetches_a_new_one(replicas: Replicas) -> None:
    api = replicas.replica()
    first = await api.access_token()
    second = await api.access_token(refresh=True)
    assert second != first
    assert replicas.fake.token_calls == 2
    assert await replicas.redis.get(replicas.token_key) == second


async def test_the_lock_of_a_crashed_holder_expires(replicas: Replicas) -> None:
    # A replica took the lock and died before storing a token.
    await replicas.redis.set(replicas.lock_key, "crashed-holder", px=600)
    api = replicas.replica(lock_ttl=5.0, lock_wait=5.0)
    started = time.monotonic()
    token = await api.access_token()
    waited = time.monotonic() - started
    assert 0.4 < waited < 3.0
    assert replicas.fake.token_calls == 1
    assert await replicas.redis.get(replicas.token_key) == token
    assert await replicas.redis.exists(replicas.lock_key) == 0


async def test_a_waiter_takes_the_token_of_the_holder(replicas: Replicas) -> None:
    # Another replica holds the lock and stores its token a moment later.
    await replicas.redis.set(replicas.lock_key, "other-replica", px=5000)
    api = replicas.replica()

    async def other_replica_stores() -> None:
        await asyncio.sleep(0.3)
        await replicas.redis.set(replicas.token_key, "TOKEN-OF-OTHER", px=60_000)
        await replicas.redis.delete(replicas.lock_key)

    token, _ = await asyncio.gather(api.access_token(), other_replica_stores())
    assert token == "TOKEN-OF-OTHER"
    assert replicas.fake.token_calls == 0


async def test_a_lock_never_released_is_given_up_on(replicas: Replicas) -> None:
    await replicas.redis.set(replicas.lock_key, "stuck", px=60_000)
    api = replicas.replica(lock_wait=0.3)
    with pytest.raises(Exception, match="another instance"):
        await api.access_token()
    assert replicas.fake.token_calls == 0
    # Nobody else's lock was released.
    assert await replicas.redis.get(replicas.lock_key) == "stuck"


async def test_a_failed_fetch_releases_the_lock(replicas: Replicas) -> None:
    api = WeChatApi(
        replicas.fake.app_id, "wrong-secret", replicas.base, store=SharedStore(REDIS_URL)
    )
    replicas.apis.append(api)
    try:
        with pytest.raises(Exception, match="40125"):
            await api.access_token()
        assert await replicas.redis.exists(replicas.lock_key) == 0
        assert await replicas.redis.exists(replicas.token_key) == 0
    finally:
        assert isinstance(api.store, SharedStore)
        await api.store.close()
    # A replica with the right secret is not held up.
    await replicas.replica().access_token()
    assert replicas.fake.token_calls == 2


async def test_no_secret_in_redis_or_the_log(
    replicas: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        one, two = replicas.replica(), replicas.replica()
        await one.send_text("o-user", "你好")
        replicas.fake.expire_tokens()
        await two.send_text("o-user", "再见")
    assert replicas.fake.token_calls == 2
    keys = await replicas.redis.keys(f"wechat:token:{replicas.fake.app_id}*")
    assert keys == [replicas.token_key]
    for key in keys:
        assert APP_SECRET not in (await replicas.redis.get(key) or "")
    assert APP_SECRET not in caplog.text


async def test_without_redis_the_token_is_kept_in_the_process(
    replicas: Replicas, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    with caplog.at_level(logging.WARNING):
        api = replicas.replica(UNREACHABLE)
        tokens = await asyncio.gather(*(api.access_token() for _ in range(5)))
    assert len(set(tokens)) == 1
    assert isinstance(api.store, SharedStore) and not api.store.uses_redis
    assert "unreachable" in caplog.text
    await api.send_text("o-user", "第一条")
    replicas.fake.expire_tokens(40014)
    await api.send_text("o-user", "第二条")
    assert replicas.fake.token_calls == 2
    assert replicas.fake.sent_to("o-user") == ["第一条", "第二条"]
    # Nothing reached the real Redis.
    assert await replicas.redis.exists(replicas.token_key) == 0


async def test_scale_profile_without_redis_fetches_no_token_of_its_own(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    api = replicas.replica(UNREACHABLE)
    with pytest.raises(SharedStoreUnavailable):
        await api.send_text("o-user", "你好")
    # A token of this replica alone would invalidate the one the others share.
    assert replicas.fake.token_calls == 0
    assert replicas.fake.send_calls == 0


async def test_without_a_store_the_token_is_kept_in_the_process() -> None:
    fake = FakeWeChatApi(app_id=f"wxtok{uuid.uuid4().hex[:14]}")
    base = await fake.start()
    api = WeChatApi(fake.app_id, fake.app_secret, base)
    try:
        assert isinstance(api.store, MemoryStore)
        await asyncio.gather(*(api.access_token() for _ in range(3)))
        await api.send_text("o-user", "你好")
        assert fake.token_calls == 1
    finally:
        await api.close()
        await fake.stop()


async def test_compare_and_delete_releases_only_ones_own_lock(replicas: Replicas) -> None:
    key = f"{replicas.lock_key}"
    for store in (SharedStore(REDIS_URL), MemoryStore()):
        assert await store.set(key, "mine", 5, only_new=True)
        assert not await store.set(key, "theirs", 5, only_new=True)
        assert not await store.delete_if(key, "theirs")
        assert await store.get(key) == "mine"
        assert await store.delete_if(key, "mine")
        assert await store.get(key) is None
        assert not await store.delete_if(key, "mine")
        if isinstance(store, SharedStore):
            assert store.uses_redis
            await store.close()
