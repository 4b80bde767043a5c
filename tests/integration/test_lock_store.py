"""The conversation lock shared by several Rasa servers, on the real Redis.

Each store instance plays one Rasa server (its own Redis connection); threads
run them at the same time, as separate servers would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

from bot.rasa_ext.lock_store import AtomicRedisLockStore
from bot.tools.cluster_config import scale_env

ROOT = Path(__file__).resolve().parents[2]

REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
DB = 1


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    client = redis.StrictRedis(host=REDIS_HOST, db=DB)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"no Redis at {REDIS_HOST}: {error}")
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)
    client.close()


def replica(prefix: str, cls: type[RedisLockStore] = AtomicRedisLockStore) -> RedisLockStore:
    return cls(host=REDIS_HOST, db=DB, key_prefix=prefix)


def in_threads(count: int, work: object) -> None:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)  # type: ignore[operator]
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _tickets(prefix: str, cls: type[RedisLockStore]) -> list[int]:
    """The ticket numbers 8 replicas get, taking 25 each at the same time."""
    numbers: list[int] = []
    guard = threading.Lock()

    def take(index: int) -> None:
        store = replica(prefix, cls)
        for _ in range(25):
            number = store.issue_ticket("c1", lock_lifetime=60)
            with guard:
                numbers.append(number)

    in_threads(8, take)
    return numbers


def test_replicas_taking_tickets_at_once_never_get_the_same_number(prefix: str) -> None:
    assert sorted(_tickets(prefix, AtomicRedisLockStore)) == list(range(200))


def test_with_rasas_own_store_two_replicas_get_the_same_ticket(prefix: str) -> None:
    """Why this store exists: the same run with Rasa's store hands out duplicates
    (and loses tickets), so two messages of one conversation run at once."""
    numbers = _tickets(prefix, RedisLockStore)
    assert len(set(numbers)) < len(numbers)


def _exclusion(prefix: str, cls: type[RedisLockStore]) -> int:
    """The most holders of one conversation's lock at once, over 8 replicas."""
    inside = 0
    most = 0
    guard = threading.Lock()

    async def hold(store: RedisLockStore) -> None:
        nonlocal inside, most
        for _ in range(6):
            async with store.lock("c2", lock_lifetime=60, wait_time_in_seconds=0.005):
                with guard:
                    inside += 1
                    most = max(most, inside)
                await asyncio.sleep(0.003)
                with guard:
                    inside -= 1

    in_threads(8, lambda index: asyncio.run(hold(replica(prefix, cls))))
    return most


def test_one_holder_at_a_time_across_replicas(prefix: str) -> None:
    assert _exclusion(prefix, AtomicRedisLockStore) == 1
    # Every ticket was given back: the lock is gone.
    assert replica(prefix).get_lock("c2") is None


def test_it_is_configured_like_rasas_redis_lock_store(prefix: str) -> None:
    config = EndpointConfig(
        url=REDIS_HOST,
        type="bot.rasa_ext.lock_store.AtomicRedisLockStore",
        port=6379,
        db=DB,
        key_prefix=prefix,
    )
    store = AtomicRedisLockStore(endpoint_config=config)
    assert store.key_prefix.startswith(f"{prefix}:")
    number = store.issue_ticket("c3")
    assert store.get_lock("c3").now_serving == number  # type: ignore[union-attr]
    store.cleanup("c3", number)
    assert store.get_lock("c3") is None


@pytest.fixture
def redis_user(prefix: str) -> Iterator[tuple[str, str]]:
    """A Redis ACL user with a password, allowed only this test's keys; removed afterwards."""
    client = redis.StrictRedis(host=REDIS_HOST)
    name, password = f"lock-{prefix}", uuid.uuid4().hex
    client.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=[f"{prefix}:*"], commands=["+@all"]
    )
    yield name, password
    client.acl_deluser(name)
    client.close()


def _scale_lock_store(monkeypatch: pytest.MonkeyPatch, redis_url: str, prefix: str) -> LockStore:
    """The lock store as a scale-profile Rasa server builds it from `endpoints.scale.yml`."""
    for name, value in scale_env({"REDIS_URL": redis_url, "REDIS_LOCK_PREFIX": prefix}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:5055/webhook")
    endpoint = read_endpoint_config(str(ROOT / "endpoints.scale.yml"), "lock_store")
    return LockStore.create(endpoint)


def test_a_redis_with_a_password_serves_the_locks_of_the_scale_profile(
    monkeypatch: pytest.MonkeyPatch, prefix: str, redis_user: tuple[str, str]
) -> None:
    name, password = redis_user
    store = _scale_lock_store(monkeypatch, f"redis://{name}:{password}@{REDIS_HOST}:6379/0", prefix)
    assert isinstance(store, AtomicRedisLockStore)
    number = store.issue_ticket("c4")
    assert store.get_lock("c4").now_serving == number  # type: ignore[union-attr]
    store.cleanup("c4", number)


def test_a_wrong_redis_password_is_refused_not_ignored(
    monkeypatch: pytest.MonkeyPatch, prefix: str, redis_user: tuple[str, str]
) -> None:
    name, _ = redis_user
    store = _scale_lock_store(monkeypatch, f"redis://{name}:wrong@{REDIS_HOST}:6379/0", prefix)
    with pytest.raises(LockError):
        store.issue_ticket("c5")
