"""In the scale profile a signed REST request cannot be replayed to another replica.

Two replicas' authenticators share the nonces in the real Redis; a request
accepted by one is refused by the other, and a Redis that cannot be reached
gets a clear 503, never an accepted replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.rasa_ext.channels.rest_auth import (
    RedisNonces,
    ReplayCheckUnavailable,
    RestAuthenticator,
    Unauthorized,
    signed_headers,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
SECRET = "s" * 40
PATH = "/webhooks/rest/webhook"


def _request(headers: dict[str, str], body: bytes) -> Any:
    return SimpleNamespace(headers=headers, method="POST", path=PATH, query_string="", body=body)


@pytest.fixture
async def integrator() -> Any:
    """A name of this test's own, and its nonces removed afterwards."""
    name = f"it-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"rest-nonce:{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.close()


async def test_a_request_accepted_by_one_replica_is_refused_by_another(integrator: str) -> None:
    replicas = [
        RestAuthenticator({integrator: SECRET.encode()}, RedisNonces(REDIS_URL)) for _ in range(2)
    ]
    body = json.dumps({"sender": "bank-app-1", "message": "你好"}).encode()
    headers = signed_headers(integrator, SECRET, "POST", PATH, body)
    assert await replicas[0].check(_request(headers, body)) == integrator
    with pytest.raises(Unauthorized, match="nonce"):
        await replicas[1].check(_request(headers, body))
    # A new nonce is a new request.
    again = signed_headers(integrator, SECRET, "POST", PATH, body)
    assert await replicas[1].check(_request(again, body)) == integrator
    client = aioredis.from_url(REDIS_URL)
    try:
        ttl = await client.ttl(f"rest-nonce:{integrator}:{headers['X-Nonce']}")
    finally:
        await client.close()
    assert 0 < ttl <= 600  # kept for twice the window, then forgotten


async def test_without_redis_nothing_is_accepted(integrator: str) -> None:
    down = RestAuthenticator({integrator: SECRET.encode()}, RedisNonces("redis://127.0.0.1:1/0"))
    body = b"{}"
    headers = signed_headers(integrator, SECRET, "POST", PATH, body)
    with pytest.raises(ReplayCheckUnavailable) as refused:
        await down.check(_request(headers, body))
    assert refused.value.status_code == 503


async def test_a_burst_of_requests_shares_a_few_connections_and_none_is_refused(
    integrator: str,
) -> None:
    """Two hundred checks at once: every fresh nonce accepted, none 503, few connections."""
    nonces = RedisNonces(REDIS_URL)
    keys = [f"{integrator}:{uuid.uuid4().hex}" for _ in range(200)]
    results = await asyncio.gather(*(nonces.first_use(key, 60) for key in keys))
    assert results == [True] * 200
    again = await asyncio.gather(*(nonces.first_use(key, 60) for key in keys[:20]))
    assert again == [False] * 20
    pool = nonces._redis.connection_pool
    assert len(pool._connections) <= RedisNonces.MAX_CONNECTIONS
    await nonces._redis.close()
