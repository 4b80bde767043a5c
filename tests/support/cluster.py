"""Helpers of the cluster tests (`tests/cluster/`): the cluster's settings, its
RabbitMQ queues, what PostgreSQL stored, and debtors and staff as clients.

The fixtures that start the cluster are in `tests/cluster/conftest.py`; the
tests import what they use from here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiohttp
import psycopg2

from bot.console.rasa_api import api_token
from bot.domain.conduct import conduct_problems
from bot.rasa_ext.channels.rest_auth import signed_json
from bot.tools.cluster import Cluster

POSTGRES_URL = os.environ.get("E2E_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
#: The Rasa servers' `--jwt-secret` in this run.
JWT_SECRET = secrets.token_urlsafe(32)
ENTRY_PORT = int(os.environ.get("CLUSTER_TEST_PORT", 16080))
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: The one integrator allowed on the REST channel in this run (`REST_INTEGRATORS`).
REST_INTEGRATORS = f"cluster-test:{secrets.token_urlsafe(32)}"


def signed_rest(sender: str, message: str) -> dict[str, Any]:
    """aiohttp's `data` and `headers` of one signed REST message."""
    body = {"sender": sender, "message": message}
    return signed_json(body, "/webhooks/rest/webhook", REST_INTEGRATORS)


def bearer(cluster: Cluster) -> dict[str, str]:
    """The header the consoles send to the Rasa HTTP API: a fresh, valid JWT."""
    return {"Authorization": f"Bearer {api_token(cluster.config.jwt_secret)}"}


@dataclass(frozen=True)
class Queues:
    """This run's RabbitMQ queues: Rasa's events, and a copy of the audit trail."""

    events: str
    audit: str


async def declare_queues(queues: Queues) -> None:
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "bank.audit", aio_pika.ExchangeType.TOPIC, durable=True
        )
        audit = await channel.declare_queue(queues.audit, durable=True)
        await audit.bind(exchange, "audit.#")


async def delete_queues(queues: Queues) -> None:
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for name in (queues.events, queues.audit):
            await channel.queue_delete(name)


async def drain(name: str) -> list[dict[str, Any]]:
    """Every message waiting in the queue, oldest first, as JSON."""
    bodies = []
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, durable=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            bodies.append(json.loads(message.body))
    return bodies


def stored_events(cluster: Cluster, sender: str) -> list[dict[str, Any]]:
    """Every event of the conversation as the tracker store holds it, oldest first."""
    connection = psycopg2.connect(cluster.config.env["TRACKER_DB_URL"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (sender,))
            return [json.loads(row[0]) for row in cursor.fetchall()]
    finally:
        connection.close()


def app_rows(cluster: Cluster, statement: str, *values: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on the application database."""
    url = cluster.config.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, values)
            return list(cursor.fetchall())
    finally:
        connection.close()


def turns_of(events: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(user text, the bot texts that followed it) for each stored user message."""
    turns: list[tuple[str, list[str]]] = []
    for event in events:
        if event["event"] == "user":
            turns.append((event.get("text") or "", []))
        elif event["event"] == "bot" and turns:
            turns[-1][1].append(event.get("text") or "")
    return turns


def reply_texts(replies: list[dict[str, Any]]) -> list[str]:
    return [str(reply.get("text") or "") for reply in replies]


@dataclass
class Conversation:
    """One debtor on the REST channel whose messages go to any replica."""

    sender: str = field(default_factory=lambda: f"cl-{uuid.uuid4().hex}")
    #: Messages answered with HTTP 200, in order, with their replies.
    acknowledged: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    #: Messages sent again after a replica failed while handling them.
    retried: set[int] = field(default_factory=set)
    #: Which replica answered each acknowledged message.
    replicas: list[str] = field(default_factory=list)


async def say(
    session: aiohttp.ClientSession,
    urls: list[str],
    conversation: Conversation,
    message: str,
    rng: random.Random,
    attempts: int = 6,
) -> list[dict[str, Any]]:
    """Send one message to a random replica; on a refused or broken connection,
    send it again to another one, as a load balancer would."""
    candidates = list(urls)
    for attempt in range(attempts):
        url = rng.choice(candidates)
        try:
            async with session.post(
                f"{url}/webhooks/rest/webhook",
                **signed_rest(conversation.sender, message),
                timeout=aiohttp.ClientTimeout(total=120),
            ) as response:
                if response.status == 200:
                    replies: list[dict[str, Any]] = await response.json()
                    for reply in replies:
                        problems = conduct_problems(str(reply.get("text") or ""))
                        assert not problems, f"{problems}: {reply}"
                    conversation.acknowledged.append((message, replies))
                    conversation.replicas.append(url)
                    return replies
                body = await response.text()
                raise AssertionError(f"{url} answered HTTP {response.status}: {body[:300]}")
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
            if attempt + 1 == attempts:
                raise
            conversation.retried.add(len(conversation.acknowledged))
            if len(candidates) > 1:
                candidates.remove(url)
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


def quoted(sender: str) -> str:
    return urllib.parse.quote(sender, safe="")


async def sign_in(session: aiohttp.ClientSession, console: str, password: str) -> str:
    """Sign the demo supervisor in on `console` (as the login form does); the CSRF token."""
    async with session.get(f"{console}/login") as response:
        page = await response.text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    async with session.post(
        f"{console}/login",
        data={"username": "demo", "password": password, "csrf_token": match.group(1)},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
    async with session.get(f"{console}/api/me") as response:
        assert response.status == 200
        token: str = (await response.json())["csrf_token"]
    return token
