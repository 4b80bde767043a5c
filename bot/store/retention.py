"""The retention purge: conversations and audit trails past the policy's retention (PIPL Art. 19).

    python -m bot.store.retention purge [--dry-run] [--wait] [--batch-size N]

Reads the `retention` section of the negotiation policy (`NEGOTIATION_POLICY`),
the application database (`DATABASE_URL`, or `--url`) and the tracker store's
(`TRACKER_DB_URL`, else the SQLite file `TRACKER_DB`, default `var/tracker.db`;
or `--tracker-url`), which may be the same database. What is deleted and what
anonymised is written in the policy file; whether a conversation is past
retention is `bot.domain.retention`'s rule. Prints a JSON summary on stdout:
the cutoffs, rows deleted and anonymised per table, conversations purged and
kept.

Safe to run on a schedule and on several replicas at once: conversations are
handled in batches, each one transaction per database (on SQLite `BEGIN
IMMEDIATE`, so a second run waits for it), each change a conditional statement
counted by its row count, so a row is purged and counted once. On PostgreSQL a
run first takes a session advisory lock keyed on the `audit_log` table; a
second run skips and says so (`"skipped"`), or with `--wait` waits for it. A
run that stops half-way leaves whole batches done, and the next run finishes.

The audit log is append-only: its triggers refuse UPDATE and DELETE. The purge
is the one exception: in the transaction that deletes a batch of a
conversation's entries it disables the delete trigger (PostgreSQL, which needs
the table owner's role: the one that migrates) or drops it (SQLite), and
restores it before the commit, so no other transaction ever sees the log
unguarded. Every purge that changed anything audits itself, with its counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from bot.domain import retention
from bot.domain.clock import BEIJING, beijing_today
from bot.domain.policy import PolicyError, Retention, load_policy
from bot.store import retention_rows as rows
from bot.store.engine import advisory_lock_key, database_url, sync_url
from bot.store.models import utcnow
from bot.store.transcript import DEFAULT_TRACKER_DB

DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 1000
#: First key of the two-key advisory lock; the second is `audit_log`'s oid, so that
#: databases in different schemas do not contend.
LOCK_SPACE = advisory_lock_key("bot.store.retention")
_LOCK = "pg_{}advisory_lock(:space, 'audit_log'::regclass::oid::int)"
#: The append-only triggers that refuse a DELETE (bot/store/migrations/versions/0001).
PG_TRIGGER = "audit_log_no_update_delete"
SQLITE_TRIGGER = "audit_log_no_delete"
SKIPPED = "another purge is running on this database"


@dataclass
class Summary:
    """What a purge did (or, in a dry run, would do)."""

    dry_run: bool
    today: date
    policy: Retention
    tracker: str = "none"
    skipped: str | None = None
    conversations: dict[str, int] = field(
        default_factory=lambda: {"purged": 0, "kept_open": 0, "kept_recent": 0}
    )
    audit_trails: dict[str, int] = field(
        default_factory=lambda: {"purged": 0, "kept_open": 0, "kept_recent": 0}
    )
    deleted: dict[str, int] = field(default_factory=dict)
    anonymised: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.deleted.values()) or any(self.anonymised.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `cutoff` is the latest Beijing day of last activity that is past."""
        days = self.policy
        return {
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "today": self.today.isoformat(),
            "retention_days": {
                "conversations": days.conversation_days,
                "audit_trail": days.audit_days,
            },
            "cutoff": {
                "conversations": retention.cutoff(self.today, days.conversation_days).isoformat(),
                "audit_trail": retention.cutoff(self.today, days.audit_days).isoformat(),
            },
            "tracker": self.tracker,
            "conversations": dict(self.conversations),
            "audit_trails": dict(self.audit_trails),
            "deleted": dict(self.deleted),
            "anonymised": dict(self.anonymised),
        }


def tracker_database_url() -> str | None:
    """The tracker store's database: `TRACKER_DB_URL`, else the SQLite file if it exists."""
    url = os.environ.get("TRACKER_DB_URL", "").strip()
    if url:
        return url
    path = Path(os.environ.get("TRACKER_DB", "").strip() or DEFAULT_TRACKER_DB)
    return f"sqlite:///{path}" if path.is_file() else None


def _engine(url: str) -> Engine:
    """A sync engine; on SQLite each transaction begins as `conn.info["begin"]` says."""
    engine = sa.create_engine(
        sync_url(url), future=True, poolclass=sa.pool.NullPool, connect_args=_connect_args(url)
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql(connection.info.get("begin", "BEGIN"))

    return engine


def _connect_args(url: str) -> dict[str, Any]:
    # A second purge (or the assistant) waits for SQLite's write lock instead of failing.
    return {"timeout": 30} if make_url(sync_url(url)).get_backend_name() == "sqlite" else {}


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite URL whose file does not exist (opening it would create an empty one)."""
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).is_file()


class _Databases:
    """The application and tracker connections of one run (one connection if the same database)."""

    def __init__(self, app_url: str, tracker_url: str | None) -> None:
        self.engines = [_engine(app_url)]
        self.app = self.engines[0].connect()
        self.tracker: Connection | None = None
        self.has_state = False
        self.where = "none"
        if tracker_url is None or _missing_sqlite_file(tracker_url):
            return
        if make_url(sync_url(tracker_url)) == make_url(sync_url(app_url)):
            self.tracker, self.where = self.app, "application database"
        else:
            self.engines.append(_engine(tracker_url))
            self.tracker, self.where = self.engines[1].connect(), "separate database"
        tables = set(sa.inspect(self.tracker).get_table_names())
        self.tracker.rollback()
        if rows.EVENTS.name not in tables:
            self.tracker, self.where = None, "none"
        else:
            self.has_state = rows.STATE.name in tables

    @property
    def postgresql(self) -> bool:
        return self.app.dialect.name == "postgresql"

    def close(self) -> None:
        for connection in {id(c): c for c in (self.app, self.tracker) if c is not None}.values():
            connection.close()
        for engine in self.engines:
            engine.dispose()

    def lock(self, wait: bool) -> bool:
        """Take the purge's advisory lock (PostgreSQL); False if another run holds it."""
        if not self.postgresql:
            return True
        statement = sa.text("SELECT " + _LOCK.format("" if wait else "try_"))
        result = self.app.execute(statement, {"space": LOCK_SPACE}).scalar()
        self.app.commit()
        return wait or bool(result)

    @contextmanager
    def transaction(self, write: bool) -> Iterator[None]:
        """One transaction on each database; the tracker's commits first."""
        connections = [self.app]
        if self.tracker is not None and self.tracker is not self.app:
            connections.append(self.tracker)
        for connection in connections:
            connection.info["begin"] = "BEGIN IMMEDIATE" if write else "BEGIN"
            connection.begin()
        try:
            yield
        except BaseException:
            for connection in connections:
                connection.rollback()
            raise
        for connection in reversed(connections):
            if write:
                connection.commit()
            else:
                connection.rollback()


@contextmanager
def _audit_deletes_allowed(app: Connection) -> Iterator[None]:
    """Lift the audit log's delete guard inside this transaction only."""
    if app.dialect.name == "postgresql":
        app.execute(sa.text(f"ALTER TABLE audit_log DISABLE TRIGGER {PG_TRIGGER}"))
        yield
        app.execute(sa.text(f"ALTER TABLE audit_log ENABLE TRIGGER {PG_TRIGGER}"))
        return
    found = sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name")
    definition = app.execute(found, {"name": SQLITE_TRIGGER}).scalar()
    if definition is None:
        yield
        return
    app.execute(sa.text(f"DROP TRIGGER {SQLITE_TRIGGER}"))
    yield
    app.exec_driver_sql(definition)


def _batches(ids: set[str], size: int) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _add(counts: dict[str, int], table: str, count: int) -> None:
    counts[table] = counts.get(table, 0) + count


def _past(
    dbs: _Databases, ids: list[str], today: date, days: int, kept: dict[str, int]
) -> list[str]:
    """The conversations of `ids` past `days` of retention; the others counted in `kept`."""
    facts = rows.new_facts()
    if dbs.tracker is not None:
        rows.tracker_facts(dbs.tracker, ids, facts)
    rows.app_facts(dbs.app, ids, facts)
    past = []
    for conversation_id in ids:
        found = facts[conversation_id]
        last = found.last_activity
        if last is None:
            continue
        verdict = retention.verdict(last, found.items, today, days)
        if verdict.past:
            past.append(conversation_id)
        else:
            kept["kept_open" if verdict.open else "kept_recent"] += 1
    return past


def _purge_conversations(dbs: _Databases, summary: Summary, batch_size: int) -> None:
    days = summary.policy.conversation_days
    before = retention.cutoff_instant(summary.today, days)
    with dbs.transaction(write=False):
        ids = rows.app_candidates(dbs.app, before)
        if dbs.tracker is not None:
            ids |= rows.tracker_candidates(dbs.tracker, before)
    tracker_changes = rows.tracker_changes(dbs.has_state, before) if dbs.tracker else []
    deletions, anonymisations = rows.app_changes()
    for batch in _batches(ids, batch_size):
        with dbs.transaction(write=not summary.dry_run):
            past = _past(dbs, batch, summary.today, days, summary.conversations)
            if not past:
                continue
            # Counted once even if another run purged some of them a moment ago.
            left = rows.app_candidates(dbs.app, before, past)
            if dbs.tracker is not None:
                left |= rows.tracker_candidates(dbs.tracker, before, past)
            summary.conversations["purged"] += len(left)
            for table, change in tracker_changes:
                assert dbs.tracker is not None
                _add(summary.deleted, table, change(dbs.tracker, past, summary.dry_run))
            for table, change in deletions:
                _add(summary.deleted, table, change(dbs.app, past, summary.dry_run))
            for table, change in anonymisations:
                _add(summary.anonymised, table, change(dbs.app, past, summary.dry_run))


def _purge_audit_trails(dbs: _Databases, summary: Summary, batch_size: int) -> None:
    days = summary.policy.audit_days
    before = retention.cutoff_instant(summary.today, days)
    with dbs.transaction(write=False):
        ids = rows.audit_candidates(dbs.app, before)
    changes = rows.audit_changes(before)
    for batch in _batches(ids, batch_size):
        with dbs.transaction(write=not summary.dry_run):
            past = _past(dbs, batch, summary.today, days, summary.audit_trails)
            if not past:
                continue
            summary.audit_trails["purged"] += len(rows.audit_candidates(dbs.app, before, past))
            if summary.dry_run:
                for table, change in changes:
                    _add(summary.deleted, table, change(dbs.app, past, True))
                continue
            with _audit_deletes_allowed(dbs.app):
                for table, change in changes:
                    _add(summary.deleted, table, change(dbs.app, past, False))


def purge(
    policy: Retention,
    *,
    app_url: str,
    tracker_url: str | None,
    today: date | None = None,
    dry_run: bool = False,
    wait: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Summary:
    """Purge what is past `policy`'s retention on `today` (default: today in Beijing)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
    summary = Summary(dry_run=dry_run, today=today or beijing_today(), policy=policy)
    for table in ("events", "conversation_state", "verification_attempts", "verification_locks"):
        summary.deleted[table] = 0
    summary.deleted["verification_progress"] = 0
    summary.deleted.update(audit_publications=0, audit_log=0)
    anonymised = ("handoff_cases", "collections_referrals", "negotiation_proposals", "agreements")
    for table in (*anonymised, "staff_offers"):
        summary.anonymised[table] = 0
    dbs = _Databases(app_url, tracker_url)
    try:
        summary.tracker = dbs.where
        if not dbs.lock(wait):
            summary.skipped = SKIPPED
            return summary
        _purge_conversations(dbs, summary, batch_size)
        _purge_audit_trails(dbs, summary, batch_size)
        with dbs.transaction(write=not dry_run):
            start_of_today = datetime.combine(summary.today, time(0, 0), BEIJING)
            summary.deleted["verification_progress"] = rows.expired_progress(
                dbs.app, start_of_today.astimezone(timezone.utc), dry_run
            )
        if summary.changed and not dry_run:
            with dbs.transaction(write=True):
                record = summary.to_dict()
                details = {key: record[key] for key in ("cutoff", "deleted", "anonymised")}
                details["conversations"] = summary.conversations["purged"]
                details["audit_trails"] = summary.audit_trails["purged"]
                dbs.app.execute(rows.purge_entry(details, utcnow()))
    finally:
        dbs.close()
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.store.retention", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("purge", help="delete or anonymise what is past retention")
    run.add_argument("--dry-run", action="store_true", help="count, change nothing")
    run.add_argument("--wait", action="store_true", help="wait for a purge already running")
    run.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    run.add_argument("--url", help="application database (default: $DATABASE_URL)")
    run.add_argument("--tracker-url", help="tracker store database (default: $TRACKER_DB_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; prints the summary, returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size must be 1 to {MAX_BATCH_SIZE}")
    try:
        policy = load_policy().retention
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 1
    app_url = args.url or database_url()
    try:
        summary = purge(
            policy,
            app_url=app_url,
            tracker_url=args.tracker_url or tracker_database_url(),
            dry_run=args.dry_run,
            wait=args.wait,
            batch_size=args.batch_size,
        )
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
        print(f"retention purge failed: {error.orig}", file=sys.stderr)
        print(
            "is the database reachable and migrated (python -m bot.store upgrade)?", file=sys.stderr
        )
        return 1
    print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
