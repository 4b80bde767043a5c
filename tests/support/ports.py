"""The ports an end-to-end run listens on. Two runs side by side (one per
database, `make e2e`) set `E2E_PORT_SHIFT` so that theirs do not meet."""

from __future__ import annotations

import os

SHIFT = int(os.environ.get("E2E_PORT_SHIFT", "0"))


def e2e_port(default: int, variable: str | None = None) -> int:
    """`variable` from the environment if set, else `default` moved by the shift."""
    given = os.environ.get(variable) if variable else None
    return int(given) if given else default + SHIFT
