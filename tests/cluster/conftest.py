"""A cluster of the real servers on PostgreSQL, Redis and RabbitMQ, once per run.

Two Rasa servers, two action servers, two staff consoles and the audit relay
behind nginx, started by `bot.tools.cluster.Cluster` exactly as `make cluster` does,
on a fresh PostgreSQL database and a Redis lock-key prefix of their own. The
helpers the tests use are in `tests/support/cluster.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from bot.tools.cluster import Cluster, ClusterConfig, drop_database, scale_env
from tests.support.cluster import (
    ENTRY_PORT,
    JWT_SECRET,
    POSTGRES_URL,
    RABBITMQ_URL,
    REST_INTEGRATORS,
    Queues,
    declare_queues,
    delete_queues,
)
from tests.support.wechat_fake import FakeInThread, FakeWeChatApi
from tests.support.wechat_fake import stack_env as wechat_stack_env


@pytest.fixture(scope="session")
def wechat_api() -> Iterator[FakeWeChatApi]:
    """The fake WeChat server the replicas' WeChat channels talk to."""
    with FakeInThread(FakeWeChatApi(), ENTRY_PORT + 19) as fake:
        yield fake


@pytest.fixture(scope="session")
def queues() -> Iterator[Queues]:
    suffix = uuid.uuid4().hex[:10]
    names = Queues(events=f"rasa_events_test_{suffix}", audit=f"audit_test_{suffix}")
    asyncio.run(declare_queues(names))
    yield names
    asyncio.run(delete_queues(names))


@pytest.fixture(scope="session")
def played() -> dict[str, list[str]]:
    """Conversation ids the tests played, by what they played, for later checks."""
    return {}


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, wechat_api: FakeWeChatApi, queues: Queues
) -> Iterator[Cluster]:
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    database = f"{POSTGRES_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    env = scale_env(
        {
            "DATABASE_URL": database,
            "REDIS_LOCK_PREFIX": f"t{uuid.uuid4().hex[:8]}",
            "RABBITMQ_URL": RABBITMQ_URL,
            "RABBITMQ_EVENTS_QUEUE": queues.events,
        }
    )
    env.update(wechat_stack_env(ENTRY_PORT + 19))
    env["REST_INTEGRATORS"] = REST_INTEGRATORS
    config = ClusterConfig(
        rasa_replicas=2,
        action_replicas=2,
        console_replicas=2,
        entry_port=ENTRY_PORT,
        first_port=ENTRY_PORT + 20,
        jwt_secret=JWT_SECRET,
        run_dir=tmp_path_factory.mktemp("cluster"),
        env=env,
    )
    try:
        with Cluster(config) as running:
            yield running
    finally:
        drop_database(database)
