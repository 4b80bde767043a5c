"""Staff accounts in tests: argon2 with cheap parameters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher

from bot.store import staff


@contextmanager
def cheap_argon2() -> Iterator[None]:
    """Fast argon2 parameters (the real ones cost ~50 ms a hash)."""
    saved = staff.HASHER
    staff.HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    try:
        yield
    finally:
        staff.HASHER = saved
