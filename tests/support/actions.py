"""Running actions against a database and policy of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import yaml

from actions.context import ActionContext, use
from bot.domain.clock import BEIJING
from bot.domain.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from bot.store.engine import Database


def policy_in(path: Path) -> Policy:
    """The policy file at `path`, validated; parsed once for each content it has.

    A `Policy` is frozen, so the tests that run with the same file share one.
    """
    return _parsed(str(path), path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=16)
def _parsed(source: str, text: str) -> Policy:
    return parse_policy(yaml.safe_load(text), source)


@contextlib.contextmanager
def action_context(
    url: str,
    policy_path: Path = DEFAULT_POLICY_PATH,
    now: Callable[[], datetime] | None = None,
) -> Iterator[ActionContext]:
    """Actions in the block use the database at `url`, the policy file and the clock."""
    database = Database(url)
    extra = {"now": now} if now is not None else {}
    try:
        with use(ActionContext(database=database, policy=policy_in(policy_path), **extra)) as ctx:
            yield ctx
    finally:
        asyncio.run(database.dispose())


class SettableClock:
    """A clock a test can stop at an instant; the real time until then."""

    def __init__(self) -> None:
        self.instant: datetime | None = None

    def __call__(self) -> datetime:
        return self.instant if self.instant is not None else datetime.now(BEIJING)
