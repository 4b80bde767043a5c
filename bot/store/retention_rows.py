"""What the retention purge reads and changes, table by table.

The tracker store's tables are Rasa's (`events`) and the windowed tracker
store's (`conversation_state`): declared here by name with only the columns
used, since the store does not import `bot.rasa_ext`. Every change is one
conditional statement whose row count is what the summary reports, so two
purges at once never count a row twice, and a dry run counts the same
statements' rows without changing any.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.domain.retention import Item, agreement_item, case_item, referral_item
from bot.store.models import (
    Agreement,
    AuditLog,
    AuditPublication,
    CollectionsReferral,
    HandoffCase,
    NegotiationProposal,
    VerificationAttempt,
    VerificationLock,
    VerificationProgress,
)
from bot.store.staff_offer_records import StaffOfferRecord

_TRACKER = sa.MetaData()
#: Rasa's `events` table: the transcript of every conversation.
EVENTS = sa.Table(
    "events",
    _TRACKER,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("timestamp", sa.Float),
)
#: The windowed tracker store's state of each conversation after its last turn.
STATE = sa.Table(
    "conversation_state",
    _TRACKER,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("updated_at", sa.Float),
)

#: What an anonymised summary, proposal or case holds.
EMPTY_JSON = "{}"
#: Agreement terms still holding the debtor's circumstances (written by `bot.store.agreements`
#: with sorted keys and json's default separators; anonymised terms hold `null`).
WITH_CIRCUMSTANCES = '%"circumstances": {%'

AUDIT = AuditLog.__table__
PUBLICATIONS = AuditPublication.__table__
CASES = HandoffCase.__table__
REFERRALS = CollectionsReferral.__table__
PROPOSALS = NegotiationProposal.__table__
AGREEMENTS = Agreement.__table__
STAFF_OFFERS = StaffOfferRecord.__table__
ATTEMPTS = VerificationAttempt.__table__
LOCKS = VerificationLock.__table__
PROGRESS = VerificationProgress.__table__


@dataclass
class Facts:
    """What decides whether a conversation is past retention: its activity and its items."""

    activity: list[datetime] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)

    @property
    def last_activity(self) -> datetime | None:
        return max(self.activity, default=None)


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


def _latest(
    connection: Connection, table: sa.Table, columns: Sequence[str], ids: list[str]
) -> Iterable[tuple[str, list[datetime]]]:
    """(conversation, the latest value of each column) for the conversations in `ids`."""
    query = (
        sa.select(table.c.conversation_id, *[sa.func.max(table.c[name]) for name in columns])
        .where(table.c.conversation_id.in_(ids))
        .group_by(table.c.conversation_id)
    )
    for row in connection.execute(query):
        yield row[0], [value for value in row[1:] if value is not None]


def tracker_facts(tracker: Connection, ids: list[str], facts: dict[str, Facts]) -> None:
    """Add the time of each conversation's last event.

    The saved state is not activity of its own: it is written with the events
    of each turn, and goes with them.
    """
    query = (
        sa.select(EVENTS.c.sender_id, sa.func.max(EVENTS.c.timestamp))
        .where(EVENTS.c.sender_id.in_(ids))
        .group_by(EVENTS.c.sender_id)
    )
    for sender_id, timestamp in tracker.execute(query):
        if timestamp is not None:
            facts[sender_id].activity.append(_moment(timestamp))


def app_facts(app: Connection, ids: list[str], facts: dict[str, Facts]) -> None:
    """Add what the application database holds of each conversation: times and items."""
    for table, columns in (
        (AUDIT, ("created_at",)),
        (ATTEMPTS, ("created_at",)),
        (LOCKS, ("created_at", "locked_until")),
        (PROPOSALS, ("created_at",)),
        (AGREEMENTS, ("created_at",)),
    ):
        for conversation_id, times in _latest(app, table, columns, ids):
            facts[conversation_id].activity.extend(times)
    case_columns = ("conversation_id", "status", "reason", "holds_collection", "outcome")
    times_of_case = ("created_at", "claimed_at", "closed_at", "resumed_at")
    cases = sa.select(*[CASES.c[name] for name in case_columns + times_of_case]).where(
        CASES.c.conversation_id.in_(ids)
    )
    for case in app.execute(cases):
        times = [case.created_at, case.claimed_at, case.closed_at, case.resumed_at]
        facts[case.conversation_id].activity.extend(t for t in times if t is not None)
        facts[case.conversation_id].items.append(
            case_item(
                status=case.status,
                reason=case.reason,
                holds_collection=case.holds_collection,
                outcome=case.outcome,
                ended=case.closed_at or case.created_at,
            )
        )
    referrals = sa.select(
        REFERRALS.c.conversation_id,
        REFERRALS.c.status,
        REFERRALS.c.created_at,
        REFERRALS.c.acknowledged_at,
    ).where(REFERRALS.c.conversation_id.in_(ids))
    for referral in app.execute(referrals):
        times = [referral.created_at, referral.acknowledged_at]
        facts[referral.conversation_id].activity.extend(t for t in times if t is not None)
        facts[referral.conversation_id].items.append(
            referral_item(
                status=referral.status, ended=referral.acknowledged_at or referral.created_at
            )
        )
    agreements = sa.select(
        AGREEMENTS.c.conversation_id, AGREEMENTS.c.plan, AGREEMENTS.c.status, AGREEMENTS.c.last_due
    ).where(AGREEMENTS.c.conversation_id.in_(ids))
    for conversation_id, plan, status, last_due in app.execute(agreements):
        facts[conversation_id].items.append(
            agreement_item(plan=plan, status=status, last_due=last_due)
        )


def new_facts() -> defaultdict[str, Facts]:
    return defaultdict(Facts)


# --- candidates: a cheap first search, the domain rule decides ------------------------


def _among(column: Any, ids: list[str] | None) -> Any:
    return sa.true() if ids is None else column.in_(ids)


def tracker_candidates(
    tracker: Connection, before: datetime, ids: list[str] | None = None
) -> set[str]:
    """Conversations of the tracker store (of `ids`, if given) with no event since `before`."""
    latest = sa.func.max(sa.func.coalesce(EVENTS.c.timestamp, 0.0))
    query = (
        sa.select(EVENTS.c.sender_id)
        .where(_among(EVENTS.c.sender_id, ids))
        .group_by(EVENTS.c.sender_id)
        .having(latest < before.timestamp())
    )
    return set(tracker.execute(query).scalars())


def app_candidates(app: Connection, before: datetime, ids: list[str] | None = None) -> set[str]:
    """Conversations (of `ids`, if given) with identity checks or personal data left in
    rows created before `before`."""
    queries = [
        sa.select(table.c.conversation_id).where(
            table.c.created_at < before, _among(table.c.conversation_id, ids), content
        )
        for table, content in (
            (ATTEMPTS, sa.true()),
            (LOCKS, sa.true()),
            (CASES, _case_has_content()),
            (REFERRALS, REFERRALS.c.summary != EMPTY_JSON),
            (PROPOSALS, PROPOSALS.c.details != EMPTY_JSON),
            (AGREEMENTS, AGREEMENTS.c.terms.like(WITH_CIRCUMSTANCES)),
        )
    ]
    return set(app.execute(sa.union(*queries)).scalars())


def audit_candidates(app: Connection, before: datetime, ids: list[str] | None = None) -> set[str]:
    """Conversations (of `ids`, if given) whose audit entries are all older than `before`."""
    query = (
        sa.select(AUDIT.c.conversation_id)
        .where(AUDIT.c.conversation_id.is_not(None), _among(AUDIT.c.conversation_id, ids))
        .group_by(AUDIT.c.conversation_id)
        .having(sa.func.max(AUDIT.c.created_at) < before)
    )
    return set(app.execute(query).scalars())


# --- changes --------------------------------------------------------------------------

#: (table name, count or change) of one kind of row: `run(connection, ids, dry_run)`.
Change = tuple[str, Callable[[Connection, list[str], bool], int]]


def _count_or_delete(connection: Connection, table: sa.Table, where: Any, dry_run: bool) -> int:
    if dry_run:
        count = sa.select(sa.func.count()).select_from(table).where(where)
        return int(connection.execute(count).scalar_one())
    return int(connection.execute(sa.delete(table).where(where)).rowcount)


def _count_or_update(
    connection: Connection, table: sa.Table, where: Any, values: dict[str, Any], dry_run: bool
) -> int:
    if dry_run:
        count = sa.select(sa.func.count()).select_from(table).where(where)
        return int(connection.execute(count).scalar_one())
    return int(connection.execute(sa.update(table).where(where).values(**values)).rowcount)


def _case_has_content() -> Any:
    return sa.or_(CASES.c.summary != EMPTY_JSON, CASES.c.note.is_not(None))


def tracker_changes(has_state: bool, before: datetime) -> list[Change]:
    """Delete the transcript and saved state, unless an event came at or after `before`.

    The condition is in the statement itself: a debtor writing again while
    the purge runs keeps the conversation.
    """

    def untouched(column: Any, ids: list[str]) -> Any:
        # An alias, so that the subquery can never be correlated with the outer table.
        newer = EVENTS.alias("newer_events")
        recent = sa.select(newer.c.sender_id).where(
            newer.c.sender_id.in_(ids), newer.c.timestamp >= before.timestamp()
        )
        return sa.and_(column.in_(ids), column.not_in(recent))

    changes: list[Change] = [
        (
            "events",
            lambda c, ids, dry: _count_or_delete(
                c, EVENTS, untouched(EVENTS.c.sender_id, ids), dry
            ),
        )
    ]
    if has_state:
        changes.append(
            (
                "conversation_state",
                lambda c, ids, dry: _count_or_delete(
                    c, STATE, untouched(STATE.c.sender_id, ids), dry
                ),
            )
        )
    return changes


def _anonymise_agreements(app: Connection, ids: list[str], dry_run: bool) -> int:
    """Drop the debtor's circumstances from the agreements' terms; the rest stays."""
    query = sa.select(AGREEMENTS.c.id, AGREEMENTS.c.terms).where(
        AGREEMENTS.c.conversation_id.in_(ids), AGREEMENTS.c.terms.like(WITH_CIRCUMSTANCES)
    )
    changed = 0
    for agreement_id, text in app.execute(query).all():
        terms = json.loads(text)
        if dry_run:
            changed += 1
            continue
        terms["circumstances"] = None
        # Still holding them: another purge may have got there in between.
        update = (
            sa.update(AGREEMENTS)
            .where(AGREEMENTS.c.id == agreement_id, AGREEMENTS.c.terms.like(WITH_CIRCUMSTANCES))
            .values(terms=json.dumps(terms, ensure_ascii=False, sort_keys=True))
        )
        changed += int(app.execute(update).rowcount)
    return changed


def _anonymise_staff_offers(app: Connection, ids: list[str], dry_run: bool) -> int:
    """Drop the circumstances and the staff's note from negotiators' offers; figures stay."""
    terms = STAFF_OFFERS.c.terms
    # Still holding circumstances or a note (anonymised ones hold `null` and "").
    content = sa.or_(terms.like(WITH_CIRCUMSTANCES), terms.not_like('%"note": ""%'))
    query = sa.select(STAFF_OFFERS.c.id, terms).where(
        STAFF_OFFERS.c.conversation_id.in_(ids), content
    )
    changed = 0
    for offer_id, text in app.execute(query).all():
        if dry_run:
            changed += 1
            continue
        details = json.loads(text)
        details["circumstances"] = None
        details["terms"]["note"] = ""
        update = (
            sa.update(STAFF_OFFERS)
            .where(STAFF_OFFERS.c.id == offer_id, content)
            .values(terms=json.dumps(details, ensure_ascii=False, sort_keys=True))
        )
        changed += int(app.execute(update).rowcount)
    return changed


def app_changes() -> tuple[list[Change], list[Change]]:
    """(deletions, anonymisations) of a conversation's content in the application database."""
    deletions: list[Change] = [
        (
            "verification_attempts",
            lambda c, ids, dry: _count_or_delete(
                c, ATTEMPTS, ATTEMPTS.c.conversation_id.in_(ids), dry
            ),
        ),
        (
            "verification_locks",
            lambda c, ids, dry: _count_or_delete(c, LOCKS, LOCKS.c.conversation_id.in_(ids), dry),
        ),
    ]
    anonymisations: list[Change] = [
        (
            "handoff_cases",
            lambda c, ids, dry: _count_or_update(
                c,
                CASES,
                sa.and_(CASES.c.conversation_id.in_(ids), _case_has_content()),
                {"summary": EMPTY_JSON, "note": None},
                dry,
            ),
        ),
        (
            "collections_referrals",
            lambda c, ids, dry: _count_or_update(
                c,
                REFERRALS,
                sa.and_(REFERRALS.c.conversation_id.in_(ids), REFERRALS.c.summary != EMPTY_JSON),
                {"summary": EMPTY_JSON},
                dry,
            ),
        ),
        (
            "negotiation_proposals",
            lambda c, ids, dry: _count_or_update(
                c,
                PROPOSALS,
                sa.and_(PROPOSALS.c.conversation_id.in_(ids), PROPOSALS.c.details != EMPTY_JSON),
                {"details": EMPTY_JSON},
                dry,
            ),
        ),
        ("agreements", _anonymise_agreements),
        ("staff_offers", _anonymise_staff_offers),
    ]
    return deletions, anonymisations


def audit_changes(before: datetime) -> list[Change]:
    """Delete the conversations' audit entries (and their publication marks).

    Unless an entry came at or after `before`: the condition is in the statement.
    """

    def entries(ids: list[str], table: Any = AUDIT) -> Any:
        newer = AUDIT.alias("newer_entries")
        recent = sa.select(newer.c.conversation_id).where(
            newer.c.conversation_id.in_(ids), newer.c.created_at >= before
        )
        return sa.and_(table.c.conversation_id.in_(ids), table.c.conversation_id.not_in(recent))

    def published(ids: list[str]) -> Any:
        old = AUDIT.alias("old_entries")
        return PUBLICATIONS.c.audit_id.in_(sa.select(old.c.id).where(entries(ids, old)))

    return [
        (
            "audit_publications",
            lambda c, ids, dry: _count_or_delete(
                c,
                PUBLICATIONS,
                published(ids),
                dry,
            ),
        ),
        ("audit_log", lambda c, ids, dry: _count_or_delete(c, AUDIT, entries(ids), dry)),
    ]


def purge_entry(details: dict[str, Any], at: datetime) -> Any:
    """The audit entry a purge leaves of itself (no conversation, no debtor)."""
    return sa.insert(AUDIT).values(
        created_at=at,
        actor="system",
        action="retention_purge",
        conversation_id=None,
        debtor_id=None,
        details=json.dumps(details, ensure_ascii=False, sort_keys=True, default=_iso),
    )


def _iso(value: object) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def expired_progress(connection: Connection, before: datetime, dry_run: bool) -> int:
    """Identity pieces still waiting for a check that expired before `before` (any conversation).

    They are removed when a check ends; these are the ones of debtors who left midway.
    """
    return _count_or_delete(connection, PROGRESS, PROGRESS.c.expires_at < before, dry_run)
