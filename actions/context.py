"""What every action runs against: the database, the policy and the clock.

Actions read them from `context()`; the action server builds one from the
environment on first use (`DATABASE_URL`, `NEGOTIATION_POLICY`, the system
clock). Tests give their own with `use(ActionContext(...))`: no module is
patched and no cache cleared.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.domain.clock import BEIJING, beijing_today
from bot.domain.critical import CriticalMessages
from bot.domain.policy import Policy, current_policy
from bot.store.engine import Database, database_url


def _system_clock() -> datetime:
    return datetime.now(BEIJING)


@dataclass(frozen=True)
class ActionContext:
    """The database, the policy and the clock of one action server."""

    database: Database
    policy: Policy
    #: The current time, timezone-aware.
    now: Callable[[], datetime] = field(default=_system_clock)

    def today(self) -> date:
        """Today in Beijing: the day plans and promises count from."""
        return beijing_today(self.now())

    @functools.cached_property
    def critical_messages(self) -> CriticalMessages:
        """The policy's critical-message rules, compiled once."""
        return self.policy.critical_messages.compiled()


_current: ActionContext | None = None


def context() -> ActionContext:
    """The context actions run against; built from the environment on first use."""
    global _current
    if _current is None:
        _current = ActionContext(database=Database(database_url()), policy=current_policy())
    return _current


@contextlib.contextmanager
def use(replacement: ActionContext) -> Iterator[ActionContext]:
    """Run actions against `replacement` until the block ends."""
    global _current
    previous, _current = _current, replacement
    try:
        yield replacement
    finally:
        _current = previous
