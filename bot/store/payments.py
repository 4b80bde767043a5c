"""Command line of the payment feed and the daily sweep.

    python -m bot.store.payments import FILE.csv [--today YYYY-MM-DD]
    python -m bot.store.payments sweep [--today YYYY-MM-DD | --now YYYY-MM-DDTHH:MM]

`import` reads a CSV with the header `account_no,paid_on,amount,reference` and
prints one JSON line: rows, imported, already_imported, rejected and the
rejected rows by line. Exit status 0 when every row was imported or already on
file, 1 when some rows were rejected (the others are imported), 2 when the file
cannot be read as a payments file (nothing is imported).

`sweep` applies the payments and ends kept and broken plans for a Beijing day
(default today), queues the day's reminders and prints one JSON line of counts.
A second sweep of the same day changes nothing and prints zeros. `--now` gives
the day and the Beijing time of day (reminders wait out quiet hours by it).

Both use `DATABASE_URL` (default `var/bank.db`) and the policy of
`NEGOTIATION_POLICY` (default `bot/policies/negotiation.yml`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from bot.domain.clock import BEIJING, beijing_today
from bot.domain.policy import PolicyError, load_policy
from bot.store.engine import Database, database_url
from bot.store.payment_import import PaymentFileError, import_file
from bot.store.sweep import sweep

SOME_REJECTED = 1
UNREADABLE = 2
_DB_HINT = "is the database reachable and migrated (python -m bot.store upgrade)?"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _beijing_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time YYYY-MM-DDTHH:MM: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BEIJING)
    return moment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.store.payments",
        description="Payments from the bank's core system, and the daily sweep.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import", help="import a payments CSV file")
    load.add_argument("file", type=Path)
    load.add_argument("--today", type=_day, help="the Beijing day (default: today)")
    load.add_argument("--url", help="application database (default: $DATABASE_URL)")
    run = commands.add_parser("sweep", help="apply payments, end plans, queue reminders")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--today", type=_day, help="the Beijing day to sweep (default: today)")
    when.add_argument("--now", type=_beijing_time, help="the Beijing day and time of the sweep")
    run.add_argument("--url", help="application database (default: $DATABASE_URL)")
    return parser


async def _import(url: str, path: Path, today: date) -> dict[str, object]:
    db = Database(url)
    try:
        result = await import_file(db, path, today)
    finally:
        await db.dispose()
    return {"file": str(path), **result.to_dict("line")}


async def _sweep(url: str, today: date, now: datetime, grace_days: int) -> dict[str, object]:
    db = Database(url)
    try:
        counts = await sweep(db, today, grace_days, now=now)
    finally:
        await db.dispose()
    return counts.to_dict()


def _print(data: dict[str, object]) -> None:
    print(json.dumps(data, ensure_ascii=False), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; prints its JSON line, returns the exit status."""
    args = _parser().parse_args(argv)
    url = args.url or database_url()
    try:
        if args.command == "import":
            try:
                result = asyncio.run(_import(url, args.file, args.today or beijing_today()))
            except PaymentFileError as error:
                print(f"{args.file}: {error}; nothing was imported", file=sys.stderr)
                return UNREADABLE
            _print(result)
            return SOME_REJECTED if result["rejected"] else 0
        try:
            grace_days = load_policy().lifecycle.grace_days
        except PolicyError as error:
            print(error, file=sys.stderr)
            return 1
        now = args.now or datetime.now(timezone.utc)
        today = args.today or beijing_today(now)
        if args.today is not None and args.today != beijing_today(now):
            # Another day at this time of day (Beijing).
            now = datetime.combine(args.today, now.astimezone(BEIJING).timetz())
        _print(asyncio.run(_sweep(url, today, now, grace_days)))
        return 0
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
        print(f"payments {args.command} failed: {error.orig}", file=sys.stderr)
        print(_DB_HINT, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
