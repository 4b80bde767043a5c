"""The audit relay against the real RabbitMQ, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from bot.store import audit
from bot.store.audit_relay import AuditRelay, PassResult, main
from bot.store.engine import REPO_ROOT, Database
from bot.store.models import AuditLog, AuditPublication
from tests.support.database import BACKENDS, T0, migrated_url

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
UNREACHABLE_URL = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty migrated database."""
    with migrated_url(request.param, tmp_path) as url:
        database = Database(url)
        yield database
        await database.dispose()


@pytest.fixture
async def pg_db(tmp_path: Path) -> AsyncIterator[Database]:
    """An empty migrated PostgreSQL database (a schema of its own)."""
    with migrated_url("postgresql", tmp_path) as url:
        database = Database(url)
        yield database
        await database.dispose()


@dataclass
class Broker:
    """A test exchange of its own and an exclusive queue bound to all of it."""

    exchange: str
    queue: AbstractQueue

    async def received(self) -> list[AbstractIncomingMessage]:
        """Every message waiting in the queue, in order."""
        messages = []
        while (message := await self.queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            messages.append(message)
        return messages

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[AbstractIncomingMessage]:
        """At least `count` messages, waiting up to `seconds` for them."""
        messages: list[AbstractIncomingMessage] = []
        for _ in range(int(seconds / 0.05)):
            messages += await self.received()
            if len(messages) >= count:
                break
            await asyncio.sleep(0.05)
        return messages

    def relay(self, db: Database, url: str = RABBITMQ_URL, **options: Any) -> AuditRelay:
        return AuditRelay(db, url, self.exchange, **options)


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    name = f"test.audit.{uuid.uuid4().hex[:12]}"
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "audit.#")
        yield Broker(name, queue)
        await exchange.delete()
    finally:
        await connection.close()


def expected(entry: audit.AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": entry.created_at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "conversation_id": entry.conversation_id,
        "debtor_id": entry.debtor_id,
        "details": dict(entry.details),
    }


def bodies(messages: Sequence[AbstractIncomingMessage]) -> list[dict[str, Any]]:
    return [json.loads(message.body.decode("utf-8")) for message in messages]


def ids(messages: Sequence[AbstractIncomingMessage]) -> list[int]:
    return [int(str(message.message_id)) for message in messages]


async def published_ids(db: Database) -> list[int]:
    async with db.session() as session:
        query = sa.select(AuditPublication.audit_id).order_by(AuditPublication.audit_id)
        return list((await session.execute(query)).scalars().all())


async def record_some(db: Database, count: int = 3) -> list[audit.AuditEntry]:
    await audit.record(
        db,
        "bot",
        "offer_shown",
        "会话-1",
        7,
        {"plan": "分期", "monthly_amount": Decimal("1234.50"), "at": T0},
        at=T0,
    )
    await audit.record(db, "staff:li", "handoff_claimed", "c2", None, {"case": "RG1"})
    await audit.record(db, "system", "startup")
    for number in range(3, count):
        await audit.record(db, "bot", "disclosure", f"c{number}", number, {"n": number})
    return await audit.entries(db)


async def insert_with_id(db: Database, audit_id: int, action: str) -> None:
    """An entry with a chosen id, as a transaction holding an older id would commit it."""
    async with db.session() as session:
        session.add(AuditLog(id=audit_id, created_at=T0, actor="bot", action=action, details="{}"))
        await session.commit()


# --- publishing ------------------------------------------------------------------------------


async def test_pending_entries_are_published_once_in_order(db: Database, broker: Broker) -> None:
    entries = await record_some(db)
    async with broker.relay(db) as relay:
        assert await relay.publish_pending() == PassResult(published=3, complete=True)
        messages = await broker.received()
        assert ids(messages) == [entry.id for entry in entries]
        assert [m.routing_key for m in messages] == [
            "audit.offer_shown",
            "audit.handoff_claimed",
            "audit.startup",
        ]
        assert bodies(messages) == [expected(entry) for entry in entries]
        assert bodies(messages)[0]["details"] == {
            "plan": "分期",
            "monthly_amount": "1234.50",
            "at": T0.isoformat(),
        }
        for message in messages:
            assert message.content_type == "application/json"
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.exchange == broker.exchange
        assert await published_ids(db) == [entry.id for entry in entries]

        assert await relay.publish_pending() == PassResult(published=0, complete=True)
        assert await relay.publish_pending(full=False) == PassResult(published=0, complete=True)
        assert await broker.received() == []

        await audit.record(db, "bot", "agreement_recorded", "c9", 3, {"reference": "XS1"})
        assert (await relay.publish_pending(full=False)).published == 1
        [message] = await broker.received()
        assert message.routing_key == "audit.agreement_recorded"
        assert bodies([message]) == [expected((await audit.entries(db))[-1])]


async def test_batches_cover_everything(db: Database, broker: Broker) -> None:
    entries = await record_some(db, count=7)
    async with broker.relay(db, batch_size=2) as relay:
        assert (await relay.publish_pending()).published == 7
    assert ids(await broker.received()) == [entry.id for entry in entries]


async def test_an_entry_committed_after_a_later_one_was_published_is_published(
    db: Database, broker: Broker
) -> None:
    await insert_with_id(db, 1, "first")
    await insert_with_id(db, 50, "later")
    async with broker.relay(db, window=100) as relay:
        assert (await relay.publish_pending(full=False)).published == 2
        await insert_with_id(db, 20, "committed_late")
        assert (await relay.publish_pending(full=False)).published == 1
        assert await relay.publish_pending() == PassResult(published=0, complete=True)
    messages = await broker.received()
    assert ids(messages) == [1, 50, 20]
    assert messages[-1].routing_key == "audit.committed_late"
    assert await published_ids(db) == [1, 20, 50]


async def test_an_entry_older_than_the_window_waits_for_the_full_pass(
    db: Database, broker: Broker
) -> None:
    await insert_with_id(db, 1000, "recent")
    async with broker.relay(db, window=10) as relay:
        assert (await relay.publish_pending(full=False)).published == 1
        await insert_with_id(db, 5, "very_late")
        assert (await relay.publish_pending(full=False)).published == 0
        assert (await relay.publish_pending(full=True)).published == 1
    assert ids(await broker.received()) == [1000, 5]


async def test_a_transaction_open_during_a_pass_is_published_after_it_commits(
    pg_db: Database, broker: Broker
) -> None:
    async with pg_db.session() as slow:
        await audit.record(slow, "bot", "held_open")
        await slow.flush()  # takes its id from the sequence now
        held_id = (await slow.execute(sa.select(AuditLog.id))).scalar_one()
        await audit.record(pg_db, "bot", "committed_first")
        async with broker.relay(pg_db) as relay:
            assert (await relay.publish_pending(full=False)).published == 1
            await slow.commit()
            assert (await relay.publish_pending(full=False)).published == 1
    messages = await broker.received()
    assert ids(messages) == [held_id + 1, held_id]
    assert [m.routing_key for m in messages] == ["audit.committed_first", "audit.held_open"]


async def test_concurrent_relays_publish_each_entry_once(pg_db: Database, broker: Broker) -> None:
    entries = await record_some(pg_db, count=9)
    other_db = Database(pg_db.url)  # another replica: its own engine and connections
    try:
        async with (
            broker.relay(pg_db, batch_size=2) as one,
            broker.relay(other_db, batch_size=2) as two,
        ):
            results = await asyncio.gather(
                one.publish_pending(wait_for_lock=True), two.publish_pending(wait_for_lock=True)
            )
            assert sum(result.published for result in results) == 9
            assert all(result.complete for result in results)
    finally:
        await other_db.dispose()
    assert ids(await broker.received()) == [entry.id for entry in entries]
    assert await published_ids(pg_db) == [entry.id for entry in entries]


async def test_a_relay_skips_the_round_while_another_holds_the_lock(
    pg_db: Database, broker: Broker
) -> None:
    await record_some(pg_db)
    async with pg_db.session() as holder:
        locked = sa.text(
            "SELECT pg_try_advisory_xact_lock(:space, 'audit_publications'::regclass::oid::int)"
        )
        assert await holder.scalar(locked, {"space": 0x41554454})
        async with broker.relay(pg_db, lock_wait=0.2) as relay:
            assert await relay.publish_pending() == PassResult(published=0, complete=False)
            with pytest.raises(TimeoutError):
                await relay.publish_pending(wait_for_lock=True)
        await holder.rollback()
    assert await broker.received() == []
    async with broker.relay(pg_db) as relay:
        assert (await relay.publish_pending()).published == 3


# --- failures --------------------------------------------------------------------------------


async def test_unreachable_broker_marks_nothing_then_everything_is_published(
    db: Database, broker: Broker
) -> None:
    entries = await record_some(db)
    async with broker.relay(db, UNREACHABLE_URL, connect_timeout=2) as relay:
        with pytest.raises(Exception):  # noqa: B017 - whatever the client raises
            await relay.publish_pending()
    assert await published_ids(db) == []
    async with broker.relay(db) as relay:
        assert (await relay.publish_pending()).published == 3
    assert ids(await broker.received()) == [entry.id for entry in entries]


async def test_a_failure_mid_batch_records_only_the_confirmed_entries(
    db: Database, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = await record_some(db)
    import bot.store.audit_relay as relay_module

    real = relay_module.to_message

    def failing_on_third(entry: AuditLog) -> aio_pika.Message:
        if entry.id == entries[2].id:
            raise ConnectionError("broker went away")
        return real(entry)

    monkeypatch.setattr(relay_module, "to_message", failing_on_third)
    async with broker.relay(db) as relay:
        with pytest.raises(ConnectionError):
            await relay.publish_pending()
        assert await published_ids(db) == [entries[0].id, entries[1].id]
        monkeypatch.setattr(relay_module, "to_message", real)
        assert (await relay.publish_pending()).published == 1
    assert ids(await broker.received()) == [entry.id for entry in entries]


async def test_unreachable_database_publishes_nothing(broker: Broker) -> None:
    down = Database("postgresql://postgres@127.0.0.1:1/test")
    try:
        async with broker.relay(down) as relay:
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                await relay.publish_pending()
    finally:
        await down.dispose()
    assert await broker.received() == []


async def test_the_loop_backs_off_retries_and_stops(
    db: Database, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    entries = await record_some(db)
    stop = asyncio.Event()
    relay = broker.relay(
        db, UNREACHABLE_URL, connect_timeout=1, initial_backoff=0.05, max_backoff=0.1
    )
    task = asyncio.create_task(relay.run(stop, interval=0.05))
    try:
        for _ in range(100):
            if sum("pass failed" in record.message for record in caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
        assert await published_ids(db) == []
        relay.rabbitmq_url = RABBITMQ_URL  # the broker is back
        messages = await broker.wait_for(3)
        assert ids(messages) == [entry.id for entry in entries]
        await audit.record(db, "bot", "after_recovery")
        [message] = await broker.wait_for(1)
        assert message.routing_key == "audit.after_recovery"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await relay.close()
    assert sum("pass failed" in record.message for record in caplog.records) >= 2
    assert await broker.received() == []


# --- command line ----------------------------------------------------------------------------


def _environment(url: str, exchange: str, rabbitmq_url: str = RABBITMQ_URL) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": url,
        "RABBITMQ_URL": rabbitmq_url,
        "AUDIT_EXCHANGE": exchange,
    }


async def _relay_process(
    environment: dict[str, str], *arguments: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.store.audit_relay",
        *arguments,
        cwd=REPO_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_command_once_publishes_and_exits(db: Database, broker: Broker) -> None:
    entries = await record_some(db)
    down = await _relay_process(_environment(db.url, broker.exchange, UNREACHABLE_URL), "--once")
    output, _ = await asyncio.wait_for(down.communicate(), 60)
    assert down.returncode == 1, output.decode()
    assert await published_ids(db) == []

    once = await _relay_process(_environment(db.url, broker.exchange), "--once")
    output, _ = await asyncio.wait_for(once.communicate(), 60)
    assert once.returncode == 0, output.decode()
    assert bodies(await broker.received()) == [expected(entry) for entry in entries]


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_command_polls_until_signalled(
    tmp_path: Path, broker: Broker, signal_number: int
) -> None:
    with migrated_url("sqlite", tmp_path) as url:
        db = Database(url)
        try:
            process = await _relay_process(_environment(url, broker.exchange), "--interval", "0.1")
            try:
                await audit.record(db, "bot", "while_running")
                [message] = await broker.wait_for(1, seconds=30)
                assert message.routing_key == "audit.while_running"
            finally:
                process.send_signal(signal_number)
                output, _ = await asyncio.wait_for(process.communicate(), 30)
            assert process.returncode == 0, output.decode()
            assert "stopped" in output.decode()
        finally:
            await db.dispose()


def test_command_refuses_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--interval", "0"])
