"""Drive the assistant over REST with concurrent conversations and report speed.

`make bench` measures three set-ups in turn, each started here and stopped
after: the embedded default of `make run` (SQLite, locks in memory), and
`make cluster` with one and with two Rasa servers (each with as many action
servers) on PostgreSQL, Redis and RabbitMQ, through nginx. On each it runs 10
and then 50 conversations at once, every message waiting for the previous
reply, and reports replies per second and the p50, p95 and p99 latency; then 4
conversations of 200 turns, for the p50 of the last ten turns against the
first ten. It prints Markdown tables, the README's figures.

`--url` measures a running stack or cluster instead, with one load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.rasa_ext.channels.rest_auth import signed_json
from bot.tools.stack import Stack, StackConfig, rest_integrators

#: What a debtor might type, in rotation: questions, a verification against the
#: database (a success, which never locks anyone out) and status look-ups.
SCRIPT = [
    "你好",
    "逾期会影响征信吗",
    "我欠了多少钱",
    "我叫张伟，身份证后四位1234，手机13800138000",
    "催收部门和协商部门有什么区别",
    "什么是停息挂账",
    "我現在欠多少",
    "最低还款会不会算逾期",
    "谢谢",
    "罚息是怎么算的",
]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (pct in 0-100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    latencies: dict[int, list[float]]  # turn number (1-based) -> seconds
    elapsed: float
    errors: int

    def window(self, first: int, last: int) -> list[float]:
        return [x for turn in range(first, last + 1) for x in self.latencies.get(turn, [])]

    @property
    def replies(self) -> int:
        return sum(len(v) for v in self.latencies.values())


async def _conversation(
    session: aiohttp.ClientSession, url: str, turns: int, result: Result
) -> None:
    sender = f"bench-{uuid.uuid4().hex}"
    messages = itertools.cycle(SCRIPT)
    integrators = rest_integrators()
    for turn in range(1, turns + 1):
        started = time.perf_counter()
        try:
            # Signed as this machine's integrator: a cluster takes nothing else.
            body = {"sender": sender, "message": next(messages)}
            async with session.post(
                f"{url}/webhooks/rest/webhook",
                **signed_json(body, "/webhooks/rest/webhook", integrators),
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        if ok:
            result.latencies.setdefault(turn, []).append(time.perf_counter() - started)
        else:
            result.errors += 1


async def run(url: str, conversations: int, turns: int) -> Result:
    result = Result(latencies={}, elapsed=0.0, errors=0)
    connector = aiohttp.TCPConnector(limit=conversations)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(
            *(_conversation(session, url, turns, result) for _ in range(conversations))
        )
        result.elapsed = time.perf_counter() - started
    return result


def report(result: Result, conversations: int, turns: int) -> str:
    late_first = max(1, turns - 9)
    early, late = result.window(1, min(10, turns)), result.window(late_first, turns)
    lines = [
        f"conversations: {conversations}, turns each: {turns}, "
        f"replies: {result.replies}, errors: {result.errors}",
        f"throughput: {result.replies / result.elapsed:.1f} replies/s over {result.elapsed:.1f} s",
    ]
    for label, values in (
        (f"turns 1-{min(10, turns)}", early),
        (f"turns {late_first}-{turns}", late),
    ):
        lines.append(
            f"{label:>14}: p50 {percentile(values, 50) * 1000:6.0f} ms  "
            f"p95 {percentile(values, 95) * 1000:6.0f} ms  "
            f"p99 {percentile(values, 99) * 1000:6.0f} ms  (n={len(values)})"
        )
    ratio = percentile(late, 50) / percentile(early, 50)
    lines.append(f"late/early p50 ratio: {ratio:.2f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Load:
    """One measured load: this many conversations of this many turns at once."""

    conversations: int
    turns: int


#: The loads `make bench` measures on every set-up: 10 and 50 conversations at once.
LOADS = (Load(10, 30), Load(50, 10))
#: Long conversations, for the late-turn against early-turn latency.
LONG = Load(4, 200)


def _row(setup: str, load: Load, result: Result) -> str:
    values = result.window(1, load.turns)
    return (
        f"| {setup} | {load.conversations} | {result.replies} | {result.errors} | "
        f"{result.replies / result.elapsed:.1f} | {percentile(values, 50) * 1000:.0f} | "
        f"{percentile(values, 95) * 1000:.0f} | {percentile(values, 99) * 1000:.0f} |"
    )


def _measure(url: str, loads: Sequence[Load]) -> list[Result]:
    # One warm-up message so that lazy loading is not measured.
    asyncio.run(run(url, 1, 1))
    return [asyncio.run(run(url, load.conversations, load.turns)) for load in loads]


def _embedded(scratch: str, loads: Sequence[Load]) -> list[Result]:
    """The default of `make run`: one Rasa server, one action server, SQLite, locks in memory."""
    database = f"sqlite+aiosqlite:///{os.path.join(scratch, 'bank.db')}"
    subprocess.run(
        [sys.executable, "-m", "bot.store", "--url", database, "seed-demo"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    config = StackConfig(
        rasa_port=25005,
        action_port=25055,
        log_dir=Path(scratch) / "embedded-log",
        extra_env={"TRACKER_DB": os.path.join(scratch, "tracker.db"), "DATABASE_URL": database},
    )
    with Stack(config) as stack:
        return _measure(stack.config.rasa_url, loads)


def _clustered(scratch: str, replicas: int, loads: Sequence[Load]) -> list[Result]:
    """`make cluster` with this many Rasa servers and as many action servers, through nginx."""
    from bot.tools.cluster import Cluster, ClusterConfig, delete_queue, drop_database, scale_env

    name = f"bench_{uuid.uuid4().hex[:12]}"
    env = scale_env(
        {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
            "REDIS_LOCK_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
            "RABBITMQ_EVENTS_QUEUE": f"{name}_events",
        }
    )
    config = ClusterConfig(
        rasa_replicas=replicas,
        action_replicas=replicas,
        console_replicas=1,
        entry_port=25080,
        first_port=25100,
        run_dir=Path(scratch) / f"cluster-{replicas}",
        env=env,
    )
    try:
        with Cluster(config) as cluster:
            return _measure(cluster.config.entry_url, loads)
    finally:
        drop_database(env["DATABASE_URL"])
        delete_queue(env["RABBITMQ_URL"], env["RABBITMQ_EVENTS_QUEUE"])


def suite() -> str:
    """Every figure `make bench` reports, as Markdown tables."""
    scratch = tempfile.mkdtemp(prefix="bench-")
    lines = [
        "| set-up | conversations at once | replies | errors | replies/s | p50 ms | p95 ms "
        "| p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    long_results: dict[str, Result] = {}
    setups: list[tuple[str, Callable[[Sequence[Load]], list[Result]]]] = [
        ("embedded (SQLite, one process each)", lambda loads: _embedded(scratch, loads)),
        ("cluster, 1 replica", lambda loads: _clustered(scratch, 1, loads)),
        ("cluster, 2 replicas", lambda loads: _clustered(scratch, 2, loads)),
    ]
    for label, measure in setups:
        results = measure([*LOADS, LONG])
        for load, result in zip(LOADS, results, strict=False):
            lines.append(_row(label, load, result))
            print(lines[-1], flush=True)
        long_results[label] = results[-1]
    lines += [
        "",
        f"{LONG.conversations} conversations of {LONG.turns} turns at once:",
        "",
        "| set-up | p50 turns 1-10 ms | p50 turns 191-200 ms | late/early |",
        "|---|---|---|---|",
    ]
    for label, result in long_results.items():
        early = percentile(result.window(1, 10), 50)
        late = percentile(result.window(LONG.turns - 9, LONG.turns), 50)
        lines.append(f"| {label} | {early * 1000:.0f} | {late * 1000:.0f} | {late / early:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="measure a running stack or cluster entry only")
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.turns < 1:
        parser.error("--conversations and --turns must be at least 1")
    if args.url:
        result = asyncio.run(run(args.url.rstrip("/"), args.conversations, args.turns))
        print(report(result, args.conversations, args.turns))
        return 1 if result.errors else 0
    print(suite())
    return 0


if __name__ == "__main__":
    sys.exit(main())
