"""Publish the audit log to RabbitMQ: a transactional-outbox relay.

The outbox is `audit_log` itself: entries are written inside the callers' transactions,
and this relay publishes every committed entry as a persistent JSON message to a durable
topic exchange (`AUDIT_EXCHANGE`, default `bank.audit`), routing key `audit.<action>`,
`message_id` the entry id. Only once the broker has confirmed a message (publisher
confirms) is its id recorded in `audit_publications`. Delivery is at least once: a crash
between the confirm and that commit publishes the entry again, so consumers de-duplicate on
`message_id`. A message that no queue is bound for is dropped by the broker, as any topic
publication would be; downstream binds durable queues.

Why a table of published ids and not a "last id" cursor: on PostgreSQL an id is taken from
the sequence at insert, not at commit, so a transaction holding id 10 may commit after id 11
was published and a cursor would skip it for ever. Pending entries are those without a
publication row, an anti-join on two primary keys. To keep the steady-state poll cheap, a
regular pass only considers ids above `max(published id) - window` (default 10,000 ids, an
index range scan); a full pass without that bound runs when the relay starts, for `--once`,
and every `sweep_every` seconds (default 300). So an entry whose transaction stayed open while
more than `window` later entries were published is still published, only later; and ids lost
to rolled-back transactions are never waited for, since nothing but `ORDER BY id` among
committed entries decides the order.

Several relays (one per replica) may run at once on PostgreSQL: each batch is one
transaction that first takes `pg_try_advisory_xact_lock`, keyed on the `audit_publications`
table's oid (so different schemas do not contend), then reads, publishes and records. A relay
that does not get the lock skips the round (with `--once` it waits for the lock). The lock is
released after commit, when the publication rows are already visible to the next holder's
fresh READ COMMITTED snapshot: no batch is published twice and messages leave in id order. On
SQLite a single relay is assumed; the batch is read in a short transaction closed before
publishing, so the relay never holds SQLite's lock while it waits for the broker.

Broker or database unavailable: the pass fails, nothing unconfirmed is marked published, the
relay logs, backs off (doubling, capped) and retries. SIGTERM or SIGINT stops it between
batches.

Run: `python -m bot.store.audit_relay [--once] [--interval SECONDS] [--batch-size N]`, with
`RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672/), `DATABASE_URL` and
`AUDIT_EXCHANGE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.engine import Database
from bot.store.models import AuditLog, AuditPublication, utcnow

log = logging.getLogger(__name__)

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "bank.audit"
ROUTING_PREFIX = "audit."
APP_ID = "bot.store.audit_relay"
#: First key of the two-key advisory lock; the second is `audit_publications`' oid.
LOCK_SPACE = 0x41554454  # "AUDT"
_TRY_LOCK = sa.text(
    "SELECT pg_try_advisory_xact_lock(:space, 'audit_publications'::regclass::oid::int)"
)
#: How long `--once` waits between attempts to take the lock another relay holds.
LOCK_RETRY_SECONDS = 0.05


class NotConfirmed(RuntimeError):
    """The broker did not acknowledge a published message."""


@dataclass(frozen=True)
class PassResult:
    """What one pass did: entries published, and whether it saw everything pending."""

    published: int
    #: False when another relay held the lock or the relay was stopped mid-pass.
    complete: bool


def message_body(entry: AuditLog) -> dict[str, Any]:
    """The JSON object published for `entry`."""
    return {
        "id": entry.id,
        "created_at": entry.created_at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "conversation_id": entry.conversation_id,
        "debtor_id": entry.debtor_id,
        "details": json.loads(entry.details),
    }


def to_message(entry: AuditLog) -> aio_pika.Message:
    """A persistent JSON message for `entry`, its id as `message_id`."""
    body = json.dumps(message_body(entry), ensure_ascii=False, sort_keys=True)
    return aio_pika.Message(
        body.encode("utf-8"),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(entry.id),
        timestamp=entry.created_at,
        type=entry.action,
        app_id=APP_ID,
    )


def routing_key(entry: AuditLog) -> str:
    """`audit.<action>`."""
    return ROUTING_PREFIX + entry.action


async def _sleep(stop: asyncio.Event | None, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class AuditRelay:
    """Publishes unpublished audit entries, in id order, to a topic exchange."""

    def __init__(
        self,
        db: Database,
        rabbitmq_url: str = DEFAULT_RABBITMQ_URL,
        exchange: str = DEFAULT_EXCHANGE,
        *,
        batch_size: int = 100,
        window: int = 10_000,
        sweep_every: float = 300.0,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        lock_wait: float = 60.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if batch_size < 1 or window < 0:
            raise ValueError("batch_size must be positive and window not negative")
        self.db = db
        self.rabbitmq_url = rabbitmq_url
        self.exchange_name = exchange
        self.batch_size = batch_size
        self.window = window
        self.sweep_every = sweep_every
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.lock_wait = lock_wait
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def __aenter__(self) -> AuditRelay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- broker -------------------------------------------------------------------------

    async def _open_exchange(self) -> AbstractExchange:
        """The declared exchange on a confirming channel, (re)connecting if needed."""
        if (
            self._exchange is not None
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        ):
            return self._exchange
        await self.close()
        connection = await aio_pika.connect(self.rabbitmq_url, timeout=self.connect_timeout)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange
        return exchange

    async def close(self) -> None:
        """Close the broker connection, if any; the next publication reconnects."""
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _publish(self, entries: Sequence[AuditLog]) -> tuple[list[int], Exception | None]:
        """Publish in order until one fails: the confirmed ids, and the failure if any."""
        confirmed: list[int] = []
        try:
            exchange = await self._open_exchange()
            for entry in entries:
                confirmation = await exchange.publish(
                    to_message(entry),
                    routing_key(entry),
                    mandatory=False,
                    timeout=self.publish_timeout,
                )
                if not isinstance(confirmation, aiormq.spec.Basic.Ack):
                    raise NotConfirmed(f"audit entry {entry.id}: {confirmation!r}")
                confirmed.append(entry.id)
        except Exception as error:
            await self.close()
            return confirmed, error
        return confirmed, None

    # --- database ------------------------------------------------------------------------

    async def _floor(self, session: AsyncSession, full: bool) -> int:
        """Ids at or below this are not considered: 0 for a full pass."""
        if full:
            return 0
        highest = await session.scalar(sa.select(sa.func.max(AuditPublication.audit_id)))
        return max(0, (highest or 0) - self.window)

    async def _pending(self, session: AsyncSession, above: int) -> list[AuditLog]:
        published = sa.exists().where(AuditPublication.audit_id == AuditLog.id)
        query = (
            sa.select(AuditLog)
            .where(AuditLog.id > above, ~published)
            .order_by(AuditLog.id)
            .limit(self.batch_size)
        )
        return list((await session.execute(query)).scalars().all())

    async def _mark(self, session: AsyncSession, ids: Sequence[int]) -> None:
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        now = utcnow()
        statement = (
            insert(AuditPublication)
            .values([{"audit_id": audit_id, "published_at": now} for audit_id in ids])
            .on_conflict_do_nothing(index_elements=["audit_id"])
        )
        await session.execute(statement)
        await session.commit()

    # --- passes --------------------------------------------------------------------------

    async def publish_pending(
        self,
        *,
        full: bool = True,
        wait_for_lock: bool = False,
        stop: asyncio.Event | None = None,
    ) -> PassResult:
        """Publish pending entries batch by batch until none is left.

        `full=False` only looks at the recent `window` of ids. On PostgreSQL, when another
        relay holds the lock, return (or with `wait_for_lock`, wait up to `lock_wait`
        seconds). Raises when the broker or the database fails; confirmed entries of the
        failed batch are recorded first, unconfirmed ones never.
        """
        postgres = self.db.dialect == "postgresql"
        deadline = time.monotonic() + self.lock_wait
        above: int | None = None
        published = 0
        while stop is None or not stop.is_set():
            async with self.db.session() as session:
                if postgres and not await session.scalar(_TRY_LOCK, {"space": LOCK_SPACE}):
                    await session.rollback()
                    if not wait_for_lock:
                        return PassResult(published, complete=False)
                    if time.monotonic() > deadline:
                        raise TimeoutError("another audit relay kept the publication lock")
                    await asyncio.sleep(LOCK_RETRY_SECONDS)
                    continue
                if above is None:
                    above = await self._floor(session, full)
                entries = await self._pending(session, above)
                if not entries:
                    return PassResult(published, complete=True)
                if not postgres:
                    await session.commit()  # release SQLite's read lock while publishing
                confirmed, error = await self._publish(entries)
                if confirmed:
                    await self._mark(session, confirmed)
                    published += len(confirmed)
                if error is not None:
                    raise error
            above = entries[-1].id
            if len(entries) < self.batch_size:
                return PassResult(published, complete=True)
        return PassResult(published, complete=False)

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Poll every `interval` seconds until `stop` is set, retrying failures with backoff."""
        backoff = self.initial_backoff
        next_sweep = time.monotonic()
        while not stop.is_set():
            full = time.monotonic() >= next_sweep
            try:
                result = await self.publish_pending(full=full, stop=stop)
            except Exception as error:
                log.warning(
                    "audit relay: pass failed (%s: %s); retrying in %.1fs",
                    type(error).__name__,
                    error,
                    backoff,
                )
                delay = backoff
                backoff = min(backoff * 2, self.max_backoff)
            else:
                backoff = self.initial_backoff
                if full and result.complete:
                    next_sweep = time.monotonic() + self.sweep_every
                if result.published:
                    log.info("audit relay: published %d entries", result.published)
                delay = interval
            await _sleep(stop, delay)


# --- command line ----------------------------------------------------------------------------


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.store.audit_relay",
        description="Publish the audit log to RabbitMQ (transactional outbox relay).",
    )
    parser.add_argument("--once", action="store_true", help="publish what is pending and exit")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default 1.0)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="entries per transaction (default 100)"
    )
    arguments = parser.parse_args(argv)
    if arguments.interval <= 0 or arguments.batch_size < 1:
        parser.error("--interval and --batch-size must be positive")
    return arguments


async def _serve(arguments: argparse.Namespace) -> int:
    db = Database()
    relay = AuditRelay(
        db,
        os.environ.get("RABBITMQ_URL", "").strip() or DEFAULT_RABBITMQ_URL,
        os.environ.get("AUDIT_EXCHANGE", "").strip() or DEFAULT_EXCHANGE,
        batch_size=arguments.batch_size,
    )
    try:
        if arguments.once:
            try:
                result = await relay.publish_pending(full=True, wait_for_lock=True)
            except Exception as error:
                log.error("audit relay: %s: %s", type(error).__name__, error)
                return 1
            log.info("audit relay: published %d entries", result.published)
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for number in signals:
            loop.add_signal_handler(number, stop.set)
        log.info("audit relay: publishing to exchange %r", relay.exchange_name)
        try:
            await relay.run(stop, arguments.interval)
        finally:
            for number in signals:
                loop.remove_signal_handler(number)
        log.info("audit relay: stopped")
        return 0
    finally:
        await relay.close()
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the relay; the exit status is 1 when `--once` could not publish everything."""
    arguments = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_serve(arguments))


if __name__ == "__main__":
    raise SystemExit(main())
