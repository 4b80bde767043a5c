"""Command line: `python -m bot.store upgrade | seed-demo | seed-synthetic --count N --seed S`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from bot.store import migrate, seed
from bot.store.engine import Database, database_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.store", description=__doc__)
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL or var/bank.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="migrate the schema to the latest revision")
    commands.add_parser("seed-demo", help="upgrade, then add the demo debtors")
    synthetic = commands.add_parser("seed-synthetic", help="upgrade, then add synthetic debtors")
    synthetic.add_argument("--count", type=int, required=True)
    synthetic.add_argument("--seed", type=int, default=0)
    return parser


async def _seed(url: str, count: int | None, random_seed: int) -> int:
    db = Database(url)
    try:
        if count is None:
            return await seed.seed_demo(db)
        return await seed.seed_synthetic(db, count, random_seed)
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    url = args.url or database_url()
    migrate.upgrade(url)
    if args.command == "upgrade":
        print("schema up to date")
        return 0
    if args.command == "seed-synthetic" and args.count < 0:
        print("--count must not be negative")
        return 2
    count = args.count if args.command == "seed-synthetic" else None
    added = asyncio.run(_seed(url, count, args.seed if count is not None else 0))
    print(f"{added} debtors added")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
