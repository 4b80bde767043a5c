"""Rasa's Redis lock store, made safe for several Rasa servers.

Rasa handles one conversation's messages one at a time by a ticket lock kept
in the lock store: each message takes a ticket, waits until its ticket is
served, and removes it when done. Rasa 3.6's `RedisLockStore` changes the
lock by reading it, changing it in the process and writing it back. Within
one server that is safe (nothing awaits in between), but two servers taking a
ticket at the same moment both read the same lock and both write it back with
the same ticket number: both then hold the lock. The cluster tests saw exactly
that: two messages of one new conversation handled at once on two replicas,
and one of them lost when both created the conversation's saved state.

`AtomicRedisLockStore` makes every change of a lock (taking a ticket, removing
expired tickets, giving a ticket back and deleting the lock when nobody
waits) one optimistic Redis transaction: WATCH the key, read, MULTI, write,
EXEC, and start again if another server changed the key in between. The lock
itself, its keys and its format are Rasa's.

Configure it in `endpoints.scale.yml` with the keys of Rasa's Redis lock store:
`type: bot.rasa_ext.lock_store.AtomicRedisLockStore`, `url` (the host), `port`, `db`,
`key_prefix`, and `username`/`password` when Redis asks for them (the scale profile
takes them from `REDIS_URL`: `bot/tools/cluster_config.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

T = TypeVar("T")

#: What a change of a lock returns: the lock to store (None deletes it) and a result.
Change = Callable[[TicketLock | None], tuple[TicketLock | None, T]]


class AtomicRedisLockStore(RedisLockStore):
    """`RedisLockStore` whose lock changes are Redis transactions."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        super().__init__(**kwargs)

    def _change(self, conversation_id: str, change: Change[T]) -> T:
        key = self.key_prefix + conversation_id

        def transaction(pipe: Any) -> T:
            stored = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(stored)) if stored else None
            changed, result = change(lock)
            pipe.multi()
            if changed is None or not changed.is_someone_waiting():
                pipe.delete(key)
            else:
                pipe.set(key, changed.dumps())
            return result

        result: T = self.red.transaction(transaction, key, value_from_callable=True)
        return result

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Take the next ticket of the conversation's lock, creating the lock if needed."""

        def issue(lock: TicketLock | None) -> tuple[TicketLock | None, int]:
            lock = lock or TicketLock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except Exception as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        """Remove the expired tickets of the conversation's lock."""

        def update(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, update)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        """Give the ticket back; the lock goes when nobody else waits."""

        def finish(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Give the ticket back (deleting the lock when nobody waits), in one transaction."""
        self.finish_serving(conversation_id, ticket_number)
