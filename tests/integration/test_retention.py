"""The retention purge on SQLite and PostgreSQL, with the tracker store Rasa writes.

Each test builds one bank of conversations: inside retention, past it, past it
but with something open, and on either side of the cutoff by Beijing time. On
SQLite the tracker store is its own file (as in development); on PostgreSQL it
shares the application database (as `make cluster` does). The tracker tables
are created and written by `WindowedSQLTrackerStore` itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.domain.clock import BEIJING
from bot.domain.policy import Retention
from bot.rasa_ext.tracker_store import WindowedSQLTrackerStore
from bot.store import retention
from bot.store.engine import sync_url
from bot.store.models import (
    Account,
    Agreement,
    AgreementInstallment,
    AuditLog,
    AuditPublication,
    CollectionsReferral,
    Debtor,
    HandoffCase,
    NegotiationProposal,
    VerificationAttempt,
    VerificationLock,
    VerificationProgress,
)
from tests.support.database import BACKENDS, migrated_url

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet]
slots:
  verified:
    type: bool
    initial_value: false
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: "您好"}]
"""
)
TODAY = date(2027, 6, 1)
POLICY = Retention(conversation_days=30, audit_days=60)
#: Conversations last active on or before this Beijing day are past 30 days on TODAY.
CUTOFF = TODAY - timedelta(days=31)
CIRCUMSTANCES = {"monthly_income": "8000.00", "hardship_reason": "生病住院"}
TRACKER_TABLES = ("events", "conversation_state")
APP_TABLES = (
    "audit_log",
    "audit_publications",
    "verification_attempts",
    "verification_locks",
    "verification_progress",
    "handoff_cases",
    "collections_referrals",
    "negotiation_proposals",
    "agreements",
    "agreement_installments",
)


def days_ago(days: int, at: time = time(12, 0)) -> datetime:
    """`at` Beijing time, `days` before TODAY."""
    return datetime.combine(TODAY - timedelta(days=days), at, BEIJING)


@dataclass
class Bank:
    """The databases of one test."""

    app_url: str
    tracker_url: str
    backend: str

    def engine(self, url: str) -> sa.engine.Engine:
        return sa.create_engine(sync_url(url), future=True, poolclass=sa.pool.NullPool)

    def rows(self, table: str, where: str = "", url: str | None = None) -> list[dict[str, Any]]:
        engine = self.engine(url or self.app_url)
        try:
            with engine.connect() as connection:
                query = f"SELECT * FROM {table} {where} ORDER BY 1"  # noqa: S608 (test names)
                return [dict(row._mapping) for row in connection.execute(sa.text(query))]
        finally:
            engine.dispose()

    def events(self, sender_id: str) -> list[dict[str, Any]]:
        return self.rows("events", f"WHERE sender_id = '{sender_id}'", self.tracker_url)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        tables = {name: self.rows(name) for name in APP_TABLES}
        tables.update({name: self.rows(name, url=self.tracker_url) for name in TRACKER_TABLES})
        return tables

    def purge(self, **options: Any) -> dict[str, Any]:
        summary = retention.purge(
            POLICY, app_url=self.app_url, tracker_url=self.tracker_url, today=TODAY, **options
        )
        return summary.to_dict()


def _tracker_store(backend: str, app_url: str, tmp_path: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        path = tmp_path / "tracker.db"
        return f"sqlite:///{path}", WindowedSQLTrackerStore(
            domain=DOMAIN, window_events=10, dialect="sqlite", db=str(path)
        )
    # The same database and schema as the application's: a full URL as `host`.
    return app_url, WindowedSQLTrackerStore(domain=DOMAIN, window_events=10, host=sync_url(app_url))


def _chat(store: WindowedSQLTrackerStore, sender_id: str, at: datetime) -> None:
    """Two messages and a slot, saved by the tracker store as Rasa saves a turn."""
    stamp = at.timestamp()
    events = [
        UserUttered("你好", {"name": "greet"}, timestamp=stamp),
        SlotSet("verified", True, timestamp=stamp),
        BotUttered("您好", timestamp=stamp + 1),
    ]
    tracker = DialogueStateTracker.from_events(sender_id, events, DOMAIN.slots)
    asyncio.run(store.save(tracker))


def _case(conversation_id: str, at: datetime, **values: Any) -> HandoffCase:
    fields: dict[str, Any] = dict(
        reference=f"RG-{conversation_id}",
        conversation_id=conversation_id,
        channel="rest",
        reason="request_human",
        priority=4,
        summary=json.dumps({"recent_messages": [{"text": "我想找人工"}]}, ensure_ascii=False),
        status="closed",
        outcome="other",
        note="已电话联系",
        created_at=at,
        closed_at=at,
    )
    fields.update(values)
    return HandoffCase(**fields)


def _agreement(
    conversation_id: str, at: datetime, debtor: Debtor, account: Account, **values: Any
) -> Agreement:
    offer = {"plan": values.get("plan", "fee_waiver"), "total_payable": "1000.00"}
    fields: dict[str, Any] = dict(
        reference=f"XS-{conversation_id}",
        offer_id=f"offer-{conversation_id}",
        conversation_id=conversation_id,
        debtor_id=debtor.id,
        account_id=account.id,
        plan="fee_waiver",
        currency="CNY",
        monthly_amount="1000.00",
        months=1,
        total_payable="1000.00",
        amount_waived="0.00",
        first_due=at.date(),
        last_due=at.date(),
        terms=json.dumps(
            {
                "account": {"overdue_total": "1000.00"},
                "circumstances": CIRCUMSTANCES,
                "offer": offer,
            },
            ensure_ascii=False,
            sort_keys=True,
        ),
        status="active",
        created_at=at,
    )
    fields.update(values)
    fields["first_due"] = min(fields["first_due"], fields["last_due"])
    return Agreement(**fields)


def _audit(conversation_id: str, at: datetime, action: str = "handoff_opened") -> AuditLog:
    return AuditLog(
        created_at=at, actor="bot", action=action, conversation_id=conversation_id, details="{}"
    )


def _fill(bank: Bank, store: WindowedSQLTrackerStore) -> None:
    """The conversations every test starts from (see the module's docstring)."""
    for sender_id, ago in {
        "recent": 10,
        "old": 40,
        "ancient": 100,
        "open-case": 100,
        "dispute": 100,
        "promise": 100,
        "promise-due-late": 100,
    }.items():
        _chat(store, sender_id, days_ago(ago))
    # Either side of midnight in Beijing, the night after the cutoff day.
    _chat(store, "edge-past", datetime.combine(CUTOFF, time(23, 59), BEIJING))
    _chat(store, "edge-kept", datetime.combine(CUTOFF + timedelta(days=1), time(0, 0), BEIJING))
    store.engine.dispose()

    engine = bank.engine(bank.app_url)
    with sa.orm.Session(engine, future=True) as session:
        debtor = Debtor(
            full_name="张伟", national_id_hash="x", national_id_last4="1234", mobile="13800000000"
        )
        session.add(debtor)
        session.flush()
        account = Account(
            debtor_id=debtor.id,
            product="credit_card",
            outstanding_principal="1000.00",
            overdue_principal="1000.00",
            interest="0.00",
            penalty_fees="0.00",
            days_past_due=40,
        )
        session.add(account)
        session.flush()
        old, ancient = days_ago(40), days_ago(100)
        session.add_all(
            [
                VerificationAttempt(
                    conversation_id="recent", succeeded=True, created_at=days_ago(10)
                ),
                VerificationAttempt(conversation_id="old", succeeded=False, created_at=old),
                VerificationLock(conversation_id="old", locked_until=old, created_at=old),
                # Pieces of a check left midway: one expired yesterday, one still waiting.
                VerificationProgress(
                    conversation_id="left-midway", phone="x", expires_at=days_ago(1)
                ),
                VerificationProgress(
                    conversation_id="recent",
                    phone="x",
                    expires_at=datetime.combine(TODAY, time(10, 0), BEIJING),
                ),
                _case("old", old),
                CollectionsReferral(
                    reference="CS-old",
                    conversation_id="old",
                    channel="rest",
                    debtor_id=debtor.id,
                    reason="refused_payment",
                    summary=json.dumps({"debtor_words": "不还"}, ensure_ascii=False),
                    status="acknowledged",
                    created_at=old,
                    acknowledged_at=old,
                ),
                NegotiationProposal(
                    reference="XT-old",
                    conversation_id="old",
                    debtor_id=debtor.id,
                    account_id=account.id,
                    reason="beyond_authority",
                    details=json.dumps({"circumstances": CIRCUMSTANCES}, ensure_ascii=False),
                    created_at=old,
                ),
                _agreement(
                    "old",
                    old,
                    debtor,
                    account,
                    status="completed",
                    last_due=(old - timedelta(days=5)).date(),
                ),
                _case("ancient", ancient),
                _case("open-case", ancient, status="waiting", outcome=None, closed_at=None),
                _case(
                    "dispute",
                    ancient,
                    reason="dispute",
                    priority=2,
                    holds_collection=True,
                    outcome="dispute_logged",
                ),
                _agreement(
                    "promise",
                    ancient,
                    debtor,
                    account,
                    plan="promise_to_pay",
                    last_due=days_ago(90).date(),
                ),
                # Kept as promised, but due 20 days ago: the 30 days run from then.
                _agreement(
                    "promise-due-late",
                    ancient,
                    debtor,
                    account,
                    plan="promise_to_pay",
                    # A kept promise is `completed` (bot/domain/payments.py).
                    status="completed",
                    last_due=days_ago(20).date(),
                ),
                _audit("recent", days_ago(10)),
                _audit("old", old),
                _audit("ancient", ancient),
                _audit("ancient", ancient + timedelta(hours=1), "handoff_closed"),
                _audit("open-case", ancient),
                _audit("promise", ancient, "agreement_recorded"),
            ]
        )
        session.flush()
        agreement = session.scalars(
            sa.select(Agreement).where(Agreement.conversation_id == "old")
        ).one()
        session.add(
            AgreementInstallment(
                agreement_id=agreement.id, number=1, due_date=agreement.last_due, amount="1000.00"
            )
        )
        for entry in session.scalars(sa.select(AuditLog)).all():
            session.add(AuditPublication(audit_id=entry.id, published_at=entry.created_at))
        session.commit()
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def bank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bank]:
    """The conversations of `_fill`, on SQLite (tracker apart) and PostgreSQL (tracker shared)."""
    with migrated_url(request.param, tmp_path) as app_url:
        tracker_url, store = _tracker_store(request.param, app_url, tmp_path)
        bank = Bank(app_url, tracker_url, request.param)
        _fill(bank, store)
        yield bank


#: What the purge of the bank above does, whichever database it runs on.
EXPECTED_DELETED = {
    # Three messages' events for each of old, ancient and edge-past.
    "events": 9,
    "conversation_state": 3,
    "verification_attempts": 1,
    "verification_locks": 1,
    "verification_progress": 1,
    # Only ancient's trail is 60 days old.
    "audit_publications": 2,
    "audit_log": 2,
}
EXPECTED_ANONYMISED = {
    "handoff_cases": 2,
    "collections_referrals": 1,
    "negotiation_proposals": 1,
    "agreements": 1,
    "staff_offers": 0,
}


def test_the_purge_removes_what_is_past_retention_and_keeps_the_rest(bank: Bank) -> None:
    summary = bank.purge()

    assert summary["dry_run"] is False and summary["skipped"] is None
    assert summary["cutoff"] == {"conversations": "2027-05-01", "audit_trail": "2027-04-01"}
    assert summary["tracker"] == (
        "separate database" if bank.backend == "sqlite" else "application database"
    )
    assert summary["deleted"] == EXPECTED_DELETED
    assert summary["anonymised"] == EXPECTED_ANONYMISED
    # Kept open: open-case, dispute, promise; kept recent: promise-due-late.
    assert summary["conversations"] == {"purged": 3, "kept_open": 3, "kept_recent": 1}
    assert summary["audit_trails"] == {"purged": 1, "kept_open": 2, "kept_recent": 0}

    # The transcripts and saved states past retention are gone; every other one is whole.
    for gone in ("old", "ancient", "edge-past"):
        assert bank.events(gone) == []
    for kept in ("recent", "open-case", "dispute", "promise", "promise-due-late", "edge-kept"):
        assert len(bank.events(kept)) == 3, kept
    states = {row["sender_id"] for row in bank.rows("conversation_state", url=bank.tracker_url)}
    assert states == {"recent", "open-case", "dispute", "promise", "promise-due-late", "edge-kept"}

    # Identity checks go; cases, referrals and proposals stay without what was said.
    assert [r["conversation_id"] for r in bank.rows("verification_attempts")] == ["recent"]
    assert bank.rows("verification_locks") == []
    assert [r["conversation_id"] for r in bank.rows("verification_progress")] == ["recent"]
    cases = {row["conversation_id"]: row for row in bank.rows("handoff_cases")}
    for purged in ("old", "ancient"):
        assert (cases[purged]["summary"], cases[purged]["note"]) == ("{}", None)
        assert (cases[purged]["reference"], cases[purged]["outcome"]) == (f"RG-{purged}", "other")
    for open_one in ("open-case", "dispute"):
        assert "我想找人工" in cases[open_one]["summary"]
        assert cases[open_one]["note"] == "已电话联系"
    (referral,) = bank.rows("collections_referrals")
    assert (referral["reference"], referral["summary"]) == ("CS-old", "{}")
    (proposal,) = bank.rows("negotiation_proposals")
    assert (proposal["reference"], proposal["details"]) == ("XT-old", "{}")

    # The agreement stays, with its schedule and figures, without the debtor's circumstances.
    agreements = {row["conversation_id"]: row for row in bank.rows("agreements")}
    assert set(agreements) == {"old", "promise", "promise-due-late"}
    terms = json.loads(agreements["old"]["terms"])
    assert terms["circumstances"] is None
    assert terms["offer"]["total_payable"] == "1000.00"
    assert terms["account"] == {"overdue_total": "1000.00"}
    assert "生病住院" in agreements["promise"]["terms"]
    assert len(bank.rows("agreement_installments")) == 1

    # Only ancient's audit trail is past 60 days; the purge audits itself.
    entries = bank.rows("audit_log")
    trails = sorted({e["conversation_id"] for e in entries if e["conversation_id"]})
    assert trails == ["old", "open-case", "promise", "recent"]
    (purge_entry,) = [e for e in entries if e["action"] == "retention_purge"]
    assert (purge_entry["actor"], purge_entry["conversation_id"]) == ("system", None)
    details = json.loads(purge_entry["details"])
    assert details["deleted"] == EXPECTED_DELETED
    assert (details["conversations"], details["audit_trails"]) == (3, 1)
    published = {row["audit_id"] for row in bank.rows("audit_publications")}
    assert published == {e["id"] for e in entries if e["action"] != "retention_purge"}


def test_the_audit_log_is_append_only_again_after_a_purge(bank: Bank) -> None:
    bank.purge()
    engine = bank.engine(bank.app_url)
    try:
        for statement in ("DELETE FROM audit_log", "UPDATE audit_log SET actor = 'x'"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as connection:
                    connection.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert len(bank.rows("audit_log")) == 5


def test_a_dry_run_counts_the_same_and_changes_nothing(bank: Bank) -> None:
    before = bank.snapshot()
    dry = bank.purge(dry_run=True)
    assert bank.snapshot() == before
    assert dry["dry_run"] is True
    real = bank.purge()
    for key in ("deleted", "anonymised", "conversations", "audit_trails", "cutoff"):
        assert dry[key] == real[key], key


def test_a_second_run_purges_nothing_more(bank: Bank) -> None:
    bank.purge(batch_size=2)
    after_first = bank.snapshot()
    again = bank.purge()
    assert set(again["deleted"].values()) == set(again["anonymised"].values()) == {0}
    assert again["conversations"]["purged"] == again["audit_trails"]["purged"] == 0
    # Nothing changed, so not even a second entry of the purge itself.
    assert bank.snapshot() == after_first


def test_small_batches_purge_the_same(bank: Bank) -> None:
    summary = bank.purge(batch_size=1)
    assert summary["deleted"] == EXPECTED_DELETED
    assert summary["anonymised"] == EXPECTED_ANONYMISED


@pytest.fixture
def postgres_bank(tmp_path: Path) -> Iterator[Bank]:
    with migrated_url("postgresql", tmp_path) as app_url:
        tracker_url, store = _tracker_store("postgresql", app_url, tmp_path)
        bank = Bank(app_url, tracker_url, "postgresql")
        _fill(bank, store)
        yield bank


def _at_once(bank: Bank, runs: int, **options: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    start = threading.Barrier(runs)

    def run() -> None:
        start.wait()
        results.append(bank.purge(**options))

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == runs
    return results


def _totals(results: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {table: sum(r[key][table] for r in results) for table in results[0][key]}


def test_two_runs_at_once_purge_each_row_once(bank: Bank) -> None:
    """PostgreSQL: the second run waits for the first's lock. SQLite: for each batch's lock."""
    results = _at_once(bank, 2, wait=True)
    assert _totals(results, "deleted") == EXPECTED_DELETED
    assert _totals(results, "anonymised") == EXPECTED_ANONYMISED
    assert sum(r["conversations"]["purged"] for r in results) == 3
    if bank.backend == "postgresql":
        assert sorted(r["conversations"]["purged"] for r in results) == [0, 3]
        assert len([e for e in bank.rows("audit_log") if e["action"] == "retention_purge"]) == 1


def test_a_debtor_writing_again_during_the_purge_keeps_the_conversation(bank: Bank) -> None:
    """Each change tests the cutoff itself: a conversation judged past a moment ago that has
    a new message (or audit entry) by the time the change runs is left whole."""
    before = retention.retention.cutoff_instant(TODAY, POLICY.conversation_days)
    audit_before = retention.retention.cutoff_instant(TODAY, POLICY.audit_days)
    engine = bank.engine(bank.tracker_url)
    try:
        with engine.begin() as tracker:
            tracker.execute(
                sa.text(
                    "INSERT INTO events (sender_id, type_name, timestamp, data)"
                    " VALUES ('old', 'user', :at, '{}')"
                ),
                {"at": days_ago(0).timestamp()},
            )
            changes = dict(retention.rows.tracker_changes(True, before))
            assert changes["events"](tracker, ["old", "ancient"], False) == 3
            assert changes["conversation_state"](tracker, ["old", "ancient"], False) == 1
    finally:
        engine.dispose()
    assert len(bank.events("old")) == 4
    assert bank.events("ancient") == []
    engine = bank.engine(bank.app_url)
    try:
        with engine.begin() as app:
            app.execute(sa.insert(AuditLog.__table__), [_audit_values("ancient", days_ago(0))])
            deletes = dict(retention.rows.audit_changes(audit_before))
            # Counted as a dry run counts: the condition is the statement's own.
            assert deletes["audit_log"](app, ["ancient", "open-case"], True) == 1
            assert deletes["audit_publications"](app, ["ancient", "open-case"], True) == 1
    finally:
        engine.dispose()


def _audit_values(conversation_id: str, at: datetime) -> dict[str, Any]:
    return dict(
        created_at=at,
        actor="bot",
        action="disclosure",
        conversation_id=conversation_id,
        details="{}",
    )


def test_a_run_while_another_holds_the_lock_skips_and_says_so(postgres_bank: Bank) -> None:
    engine = postgres_bank.engine(postgres_bank.app_url)
    before = postgres_bank.snapshot()
    try:
        with engine.connect() as holder:
            holder.execute(
                sa.text("SELECT pg_advisory_lock(:space, 'audit_log'::regclass::oid::int)"),
                {"space": retention.LOCK_SPACE},
            )
            summary = postgres_bank.purge()
            assert summary["skipped"] == retention.SKIPPED
            assert set(summary["deleted"].values()) == {0}
            assert postgres_bank.snapshot() == before
    finally:
        engine.dispose()
    assert postgres_bank.purge()["deleted"] == EXPECTED_DELETED


def test_without_the_lock_two_runs_still_count_each_row_once(
    postgres_bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change is a conditional statement: two replicas racing batch for batch agree."""
    monkeypatch.setattr(retention._Databases, "lock", lambda self, wait: True)
    results = _at_once(postgres_bank, 2, batch_size=1)
    assert _totals(results, "deleted") == EXPECTED_DELETED
    assert _totals(results, "anonymised") == EXPECTED_ANONYMISED


def _command(bank: Bank, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.store.retention",
            *arguments,
            "--url",
            bank.app_url,
            "--tracker-url",
            bank.tracker_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=Path(__file__).resolve().parents[2],
    )


def test_the_command_prints_a_json_summary(bank: Bank, tmp_path: Path) -> None:
    """With the bundled policy (three years) nothing of 2027 is past retention today."""
    done = _command(bank, "purge", "--dry-run")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dry_run"] is True
    assert summary["retention_days"] == {"conversations": 1095, "audit_trail": 1825}
    assert set(summary["deleted"]) >= {"events", "audit_log"}

    broken = tmp_path / "broken.yml"
    broken.write_text("version: 1\n", encoding="utf-8")
    refused = _command(bank, "purge", NEGOTIATION_POLICY=str(broken))
    assert refused.returncode == 1
    assert "invalid negotiation policy" in refused.stderr
    assert refused.stdout == ""

    bad_batch = _command(bank, "purge", "--batch-size", "0")
    assert bad_batch.returncode == 2
    assert "--batch-size must be 1 to 1000" in bad_batch.stderr
