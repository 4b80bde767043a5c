"""Drive the stack over REST with concurrent conversations and report speed.

`make bench` runs N conversations of M turns at the same time, each message
waiting for the previous reply, and prints replies per second and the p50, p95
and p99 latency of the early turns (1-10) and the late turns (the last ten),
so that a slowdown in long conversations shows.
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
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from bot.stack import Stack, StackConfig

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
    for turn in range(1, turns + 1):
        started = time.perf_counter()
        try:
            async with session.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": sender, "message": next(messages)},
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running stack; if absent one is started")
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.turns < 1:
        parser.error("--conversations and --turns must be at least 1")

    if args.url:
        result = asyncio.run(run(args.url.rstrip("/"), args.conversations, args.turns))
    else:
        scratch = tempfile.mkdtemp(prefix="bench-")
        database = f"sqlite+aiosqlite:///{os.path.join(scratch, 'bank.db')}"
        subprocess.run([sys.executable, "-m", "bot.db", "--url", database, "seed-demo"], check=True)
        config = StackConfig(
            rasa_port=25005,
            action_port=25055,
            extra_env={
                "TRACKER_DB": os.path.join(scratch, "tracker.db"),
                "DATABASE_URL": database,
            },
        )
        with Stack(config) as stack:
            # One warm-up message so that lazy loading is not measured.
            asyncio.run(run(stack.config.rasa_url, 1, 1))
            result = asyncio.run(run(stack.config.rasa_url, args.conversations, args.turns))
    print(report(result, args.conversations, args.turns))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
