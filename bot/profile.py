"""Which deployment profile this process runs in: embedded (default) or scale.

`BOT_PROFILE=scale` (set by `make cluster` and the deployment files) means
several replicas share every piece of state through PostgreSQL, Redis and
RabbitMQ, and any request may reach any replica. Settings every replica must
share are then required, and nothing falls back to state in one process.
"""

from __future__ import annotations

import os

SCALE = "scale"


def scale_profile() -> bool:
    """Whether this process is one replica of a cluster."""
    return os.environ.get("BOT_PROFILE", "").strip() == SCALE


class MissingSharedSetting(ValueError):
    """A setting every replica must share is not set in the scale profile."""


def require_shared(name: str) -> str:
    """The value of `name`; in the scale profile it must be set (a random value
    per replica would split the cluster), elsewhere it may be empty."""
    value = os.environ.get(name, "").strip()
    if not value and scale_profile():
        raise MissingSharedSetting(
            f"{name} must be set when BOT_PROFILE=scale: every replica needs the same value"
        )
    return value


class UnsafeForScale(ValueError):
    """A setting one machine may run with, but several replicas behind a load balancer not."""


def refuse_in_scale(problem: str | None) -> None:
    """In the scale profile, refuse to start because of `problem` (when there is one)."""
    if problem and scale_profile():
        raise UnsafeForScale(f"BOT_PROFILE=scale will not start: {problem}")
