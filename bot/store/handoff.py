"""Handoff cases for human negotiators and referrals to the collections department.

Plain functions over the database, free of Rasa: the action server opens cases and
referrals, the staff console claims, answers and closes them. Every change is
audited in the same transaction as the change itself.

A case moves `waiting` -> `claimed` (by one staff member) -> `closed` (with an
outcome). A conversation has at most one open case: opening another one for it
returns the open one, raised to the more urgent priority.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.policy import Escalation, StaffHours
from bot.store import audit
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import (
    HANDOFF_OUTCOMES,
    Account,
    Agreement,
    CollectionsReferral,
    HandoffCase,
    StaffMember,
    utcnow,
)

BEIJING = ZoneInfo("Asia/Shanghai")
#: The table's columns, for expressions the typed attributes cannot express.
CASES = HandoffCase.__table__
T = TypeVar("T")
CASE_PREFIX = "RG"
#: The summary key listing the accounts a dispute put on hold.
HELD_ACCOUNTS = "held_accounts"
ACCOUNTS = Account.__table__
REFERRAL_PREFIX = "CS"


class CaseError(Exception):
    """A case cannot be changed that way (wrong state, not the holder, unknown)."""


@dataclass(frozen=True)
class CaseView:
    """A handoff case as staff see it."""

    id: int
    reference: str
    conversation_id: str
    channel: str
    debtor_id: int | None
    account_id: int | None
    reason: str
    category: str | None
    priority: int
    summary: Mapping[str, Any]
    status: str
    staff_id: int | None
    staff_name: str | None
    outcome: str | None
    note: str | None
    created_at: datetime
    claimed_at: datetime | None
    closed_at: datetime | None
    resumed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""
        return _json_ready(self)


@dataclass(frozen=True)
class OpenedCase:
    """What opening a case did: the case, and whether it is new."""

    id: int
    reference: str
    priority: int
    created: bool


@dataclass(frozen=True)
class ReferralView:
    """A collections referral as supervisors see it."""

    id: int
    reference: str
    conversation_id: str
    channel: str
    debtor_id: int
    account_id: int | None
    reason: str
    summary: Mapping[str, Any]
    status: str
    created_at: datetime
    acknowledged_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""
        return _json_ready(self)


def _json_ready(view: CaseView | ReferralView) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in view.__dataclass_fields__:
        value = getattr(view, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif name == "summary":
            value = dict(value)
        data[name] = value
    return data


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable in a case summary: {type(value).__name__}")


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=_json_default)


def _reference(prefix: str) -> str:
    return f"{prefix}{datetime.now(BEIJING):%Y%m%d}-{secrets.token_hex(3).upper()}"


def _columns(row: HandoffCase | CollectionsReferral, view: type[Any]) -> dict[str, Any]:
    """The row's values for the view's fields that are columns; the summary parsed."""
    values = {
        name: getattr(row, name) for name in view.__dataclass_fields__ if name in row.__table__.c
    }
    values["summary"] = json.loads(row.summary)
    return values


def _view(case: HandoffCase, staff_name: str | None) -> CaseView:
    return CaseView(**_columns(case, CaseView), staff_name=staff_name)


def _referral_view(referral: CollectionsReferral) -> ReferralView:
    return ReferralView(**_columns(referral, ReferralView))


# --- opening ---------------------------------------------------------------------------


async def _second_try_on_conflict(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `attempt`; if a unique index refused it, once more.

    Opening a case or a referral reads first and inserts if nothing is there;
    when another process inserted in between, the index refuses the second row
    and the second pass finds the first one.
    """
    for _ in range(2):
        try:
            return await attempt()
        except IntegrityError:
            continue
    raise CaseError(what)


async def open_case(
    db: Database,
    *,
    conversation_id: str,
    channel: str,
    reason: str,
    summary: Mapping[str, Any],
    escalation: Escalation,
    debtor_id: int | None = None,
    account_id: int | None = None,
    category: str | None = None,
    hold_accounts: Sequence[int] = (),
) -> OpenedCase:
    """Put the conversation in the negotiators' queue, or return its open case.

    A dispute puts collection of `hold_accounts` (default: `account_id`) on
    hold in the same transaction, until staff resolve it (see `close_case`);
    the case remembers which accounts it held.
    """
    priority = escalation.priorities[reason]
    return await _second_try_on_conflict(
        lambda: _open_case(
            db,
            conversation_id=conversation_id,
            channel=channel,
            reason=reason,
            summary=summary,
            priority=priority,
            debtor_id=debtor_id,
            account_id=account_id,
            category=category,
            hold_accounts=tuple(hold_accounts),
        ),
        f"could not open a case for conversation {conversation_id!r}",
    )


async def _open_case(
    db: Database,
    *,
    conversation_id: str,
    channel: str,
    reason: str,
    summary: Mapping[str, Any],
    priority: int,
    debtor_id: int | None,
    account_id: int | None,
    category: str | None,
    hold_accounts: tuple[int, ...],
) -> OpenedCase:
    held: list[int] = []
    if reason == "dispute":
        held = list(hold_accounts or ((account_id,) if account_id is not None else ()))
    if held:
        summary = {**summary, HELD_ACCOUNTS: held}
    async with db.session() as session:
        existing = (
            await session.execute(
                sa.select(HandoffCase).where(
                    HandoffCase.conversation_id == conversation_id,
                    HandoffCase.status != "closed",
                )
            )
        ).scalar_one_or_none()
        holds = bool(held)
        if holds:
            await session.execute(
                sa.update(Account)
                .where(ACCOUNTS.c.id.in_(held))
                .values(collections_hold=True)
                .execution_options(synchronize_session=False)
            )
        if existing is not None:
            existing.holds_collection = existing.holds_collection or holds
            # The newest summary is the fullest; a more urgent reason moves it up.
            before = json.loads(existing.summary)
            merged = {**before, **summary}
            merged[HELD_ACCOUNTS] = sorted(set(before.get(HELD_ACCOUNTS, [])) | set(held))
            if not merged[HELD_ACCOUNTS]:
                del merged[HELD_ACCOUNTS]
            existing.summary = _dumps(merged)
            if priority < existing.priority:
                existing.priority = priority
                existing.reason = reason
                existing.category = category
            existing.debtor_id = existing.debtor_id or debtor_id
            existing.account_id = existing.account_id or account_id
            await audit.record(
                session,
                audit.BOT_ACTOR,
                "handoff_updated",
                conversation_id,
                debtor_id,
                {"reference": existing.reference, "reason": reason},
            )
            await session.commit()
            return OpenedCase(existing.id, existing.reference, existing.priority, False)
        case = HandoffCase(
            reference=_reference(CASE_PREFIX),
            conversation_id=conversation_id,
            channel=channel,
            debtor_id=debtor_id,
            account_id=account_id,
            reason=reason,
            category=category,
            priority=priority,
            holds_collection=holds,
            summary=_dumps(summary),
        )
        session.add(case)
        await session.flush()
        await audit.record(
            session,
            audit.BOT_ACTOR,
            "handoff_opened",
            conversation_id,
            debtor_id,
            {
                "reference": case.reference,
                "reason": reason,
                "priority": priority,
                "category": category,
                "account_id": account_id,
            },
        )
        await session.commit()
        return OpenedCase(case.id, case.reference, priority, True)


async def refer_to_collections(
    db: Database,
    *,
    conversation_id: str,
    channel: str,
    debtor_id: int,
    account_id: int | None,
    reason: str,
    summary: Mapping[str, Any],
) -> str:
    """Queue the debtor's account for the collections department; returns the reference.

    A debtor is referred once per conversation while the referral is queued:
    asking again returns its reference.
    """

    async def attempt() -> str:
        async with db.session() as session:
            reference = await _insert_referral(
                session,
                actor=audit.BOT_ACTOR,
                conversation_id=conversation_id,
                channel=channel,
                debtor_id=debtor_id,
                account_id=account_id,
                reason=reason,
                summary=summary,
            )
            await session.commit()
            return reference

    return await _second_try_on_conflict(
        attempt, f"could not refer conversation {conversation_id!r}"
    )


async def _insert_referral(
    session: AsyncSession,
    *,
    actor: str,
    conversation_id: str,
    channel: str,
    debtor_id: int,
    account_id: int | None,
    reason: str,
    summary: Mapping[str, Any],
) -> str:
    """Queue a referral in `session`, or return the one already queued for this debtor here."""
    existing = (
        await session.execute(
            sa.select(CollectionsReferral.reference).where(
                CollectionsReferral.conversation_id == conversation_id,
                CollectionsReferral.debtor_id == debtor_id,
                CollectionsReferral.status == "queued",
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        return str(existing)
    reference = _reference(REFERRAL_PREFIX)
    session.add(
        CollectionsReferral(
            reference=reference,
            conversation_id=conversation_id,
            channel=channel,
            debtor_id=debtor_id,
            account_id=account_id,
            reason=reason,
            summary=_dumps(summary),
        )
    )
    await audit.record(
        session,
        actor,
        "collections_referral",
        conversation_id,
        debtor_id,
        {"reference": reference, "reason": reason, "account_id": account_id},
    )
    await session.flush()
    return reference


# --- reading ---------------------------------------------------------------------------


def _with_staff_name() -> sa.sql.Select:
    return sa.select(HandoffCase, StaffMember.display_name).outerjoin(
        StaffMember, StaffMember.id == HandoffCase.staff_id
    )


async def open_case_of(db: Database, conversation_id: str) -> CaseView | None:
    """The conversation's case that is waiting or held by staff, if any."""
    async with db.session() as session:
        row = (
            await session.execute(
                _with_staff_name().where(
                    HandoffCase.conversation_id == conversation_id,
                    HandoffCase.status != "closed",
                )
            )
        ).one_or_none()
    return None if row is None else _view(row[0], row[1])


async def queue(
    db: Database, *, statuses: tuple[str, ...] = ("waiting", "claimed")
) -> list[CaseView]:
    """Cases in `statuses`, most urgent first, then oldest first."""
    async with db.session() as session:
        rows = (
            await session.execute(
                _with_staff_name()
                .where(HandoffCase.__table__.c.status.in_(statuses))
                .order_by(HandoffCase.priority, HandoffCase.created_at, HandoffCase.id)
            )
        ).all()
    return [_view(case, name) for case, name in rows]


async def get_case(db: Database, case_id: int) -> CaseView | None:
    """One case by id, or None."""
    async with db.session() as session:
        row = (
            await session.execute(_with_staff_name().where(HandoffCase.id == case_id))
        ).one_or_none()
    return None if row is None else _view(row[0], row[1])


async def referrals(db: Database) -> list[ReferralView]:
    """The collections referrals, queued ones first, then newest first."""
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    sa.select(CollectionsReferral).order_by(
                        sa.case((CollectionsReferral.status == "queued", 0), else_=1),
                        CollectionsReferral.__table__.c.created_at.desc(),
                    )
                )
            )
            .scalars()
            .all()
        )
    return [_referral_view(r) for r in rows]


# --- staff actions ---------------------------------------------------------------------


def _actor(staff: StaffMember) -> str:
    return f"staff:{staff.username}"


async def _change_once(
    db: Database,
    model: type[HandoffCase] | type[CollectionsReferral],
    row_id: int,
    state: tuple[str, str],
    values: dict[str, Any],
    staff: StaffMember,
    action: str,
    refusal: str,
) -> None:
    """Move one row from `state[0]` to `state[1]` with `values`, and audit it.

    The state check and the change are one conditional UPDATE, so of two staff
    members doing it at once exactly one succeeds; the other gets `refusal`.
    """
    async with db.session() as session:
        result = await session.execute(
            sa.update(model)
            .where(model.id == row_id, model.status == state[0])
            .values(status=state[1], staff_id=staff.id, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            raise CaseError(refusal)
        row = await session.get(model, row_id)
        assert row is not None
        await audit.record(
            session,
            _actor(staff),
            action,
            row.conversation_id,
            row.debtor_id,
            {"reference": row.reference},
        )
        await session.commit()


async def claim_case(db: Database, case_id: int, staff: StaffMember) -> CaseView:
    """Give a waiting case to `staff`; `CaseError` if someone else got it first."""
    await _change_once(
        db,
        HandoffCase,
        case_id,
        ("waiting", "claimed"),
        {"claimed_at": utcnow()},
        staff,
        "handoff_claimed",
        "该案件已被他人认领或已结束",
    )
    view = await get_case(db, case_id)
    assert view is not None
    return view


async def record_staff_reply(db: Database, case: CaseView, staff: StaffMember, text: str) -> None:
    """Audit that `staff` answered the debtor (the text itself is in the transcript)."""
    async with db.session() as session:
        await audit.record(
            session,
            _actor(staff),
            "handoff_reply",
            case.conversation_id,
            case.debtor_id,
            {"reference": case.reference, "characters": len(text)},
        )
        await session.commit()


async def close_case(
    db: Database, case_id: int, staff: StaffMember, outcome: str, note: str
) -> CaseView:
    """Close a case held by `staff` (or any open case, for a supervisor).

    The state check and the change are one conditional UPDATE, so of two
    simultaneous closes only one takes effect, on every database. Closing a case
    whose dispute put the account on hold, with any outcome but
    `dispute_logged`, means staff resolved the dispute: the hold is lifted,
    unless an active agreement holds the account too.
    """
    if outcome not in HANDOFF_OUTCOMES:
        raise CaseError(f"unknown outcome {outcome!r}")
    now = utcnow()
    allowed = HandoffCase.status != "closed"
    if staff.role != "supervisor":
        allowed = sa.and_(HandoffCase.status == "claimed", HandoffCase.staff_id == staff.id)
    async with db.session() as session:
        result = await session.execute(
            sa.update(HandoffCase)
            .where(HandoffCase.id == case_id, allowed)
            .values(
                status="closed",
                outcome=outcome,
                note=note,
                closed_at=now,
                staff_id=sa.func.coalesce(HandoffCase.staff_id, staff.id),
                claimed_at=sa.func.coalesce(HandoffCase.claimed_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            current = await session.get(HandoffCase, case_id)
            if current is None or current.status == "closed":
                raise CaseError("该案件不存在或已结束")
            raise CaseError("只能结束自己认领的案件")
        case = await session.get(HandoffCase, case_id)
        assert case is not None
        if outcome == "referred_to_collections" and case.debtor_id is not None:
            # Staff referred the debtor: the referral joins the collections queue.
            await _insert_referral(
                session,
                actor=_actor(staff),
                conversation_id=case.conversation_id,
                channel=case.channel,
                debtor_id=case.debtor_id,
                account_id=case.account_id,
                reason="staff_referral",
                summary={**json.loads(case.summary), "case": case.reference, "note": note},
            )
        lifted: list[int] = []
        if case.holds_collection and outcome != "dispute_logged":
            held = json.loads(case.summary).get(HELD_ACCOUNTS) or [case.account_id]
            lifted = await _lift_holds(session, case, [a for a in held if a is not None])
        await audit.record(
            session,
            _actor(staff),
            "handoff_closed",
            case.conversation_id,
            case.debtor_id,
            {"reference": case.reference, "outcome": outcome, "holds_lifted": lifted},
        )
        await session.commit()
    view = await get_case(db, case_id)
    assert view is not None
    return view


async def mark_resumed(db: Database, conversation_id: str) -> None:
    """Record that the assistant answers the conversation again after its closed cases."""
    async with db.session() as session:
        await session.execute(
            sa.update(HandoffCase)
            .where(
                HandoffCase.conversation_id == conversation_id,
                HandoffCase.status == "closed",
                CASES.c.resumed_at.is_(None),
            )
            .values(resumed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        await session.commit()


#: Namespace of the PostgreSQL advisory locks taken while resuming a conversation.
_RESUME_LOCK_NAMESPACE = 0x4844_0001
#: The same on SQLite, where one console process serves the database; a lock
#: goes when no request holds or awaits it.
_local_resume_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


@asynccontextmanager
async def resuming(db: Database, conversation_id: str) -> AsyncIterator[None]:
    """Held while one console resumes a conversation, so that two never resume it twice.

    Several consoles close cases and retry failed resumptions at once; on
    PostgreSQL this is an advisory lock on the conversation, held on its own
    connection for the duration. Check `needs_resume` inside it. SQLite serves
    one console, whose requests take a lock in this process.
    """
    if db.dialect != "postgresql":
        lock = _local_resume_locks.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            yield
        return
    key = {
        "namespace": _RESUME_LOCK_NAMESPACE,
        "key": advisory_lock_key(conversation_id),
    }
    async with db.engine.connect() as connection:
        await connection.execute(sa.text("SELECT pg_advisory_lock(:namespace, :key)"), key)
        try:
            yield
        finally:
            await connection.execute(sa.text("SELECT pg_advisory_unlock(:namespace, :key)"), key)


async def needs_resume(db: Database, conversation_id: str) -> bool:
    """Whether a closed case of the conversation still waits for the assistant to resume."""
    async with db.session() as session:
        waiting = await session.execute(
            sa.select(HandoffCase.id)
            .where(
                HandoffCase.conversation_id == conversation_id,
                HandoffCase.status == "closed",
                CASES.c.resumed_at.is_(None),
            )
            .limit(1)
        )
        return waiting.first() is not None


async def awaiting_resume(db: Database, closed_since: datetime) -> list[CaseView]:
    """Cases closed since `closed_since` whose conversation the assistant has not resumed.

    Kept in the database, so that whoever closes a case (or retries after a
    failure, or after a restart) can tell the assistant to answer again. A
    conversation with a newer open case is left alone.
    """
    newer = aliased(HandoffCase)
    async with db.session() as session:
        rows = (
            await session.execute(
                _with_staff_name()
                .where(
                    HandoffCase.status == "closed",
                    CASES.c.resumed_at.is_(None),
                    CASES.c.closed_at >= closed_since,
                    ~sa.exists().where(
                        newer.conversation_id == HandoffCase.conversation_id,
                        newer.status != "closed",
                    ),
                )
                .order_by(HandoffCase.closed_at)
            )
        ).all()
    return [_view(case, name) for case, name in rows]


async def _lift_holds(session: AsyncSession, case: HandoffCase, held: list[int]) -> list[int]:
    """Lift the dispute holds `case` put on `held`, but not where something else holds.

    An active agreement holds its account, and so does another dispute: one
    still open, or one closed as `dispute_logged` (staff are investigating).
    """
    lifted = []
    for account_id in held:
        agreed = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(Agreement)
                .where(Agreement.account_id == account_id, Agreement.status == "active")
            )
        ).scalar_one()
        other_disputes = (
            await session.execute(
                sa.select(HandoffCase.summary).where(
                    HandoffCase.id != case.id,
                    CASES.c.holds_collection.is_(True),
                    sa.or_(HandoffCase.status != "closed", HandoffCase.outcome == "dispute_logged"),
                )
            )
        ).scalars()
        disputed = any(
            account_id in (json.loads(summary).get(HELD_ACCOUNTS) or [])
            for summary in other_disputes
        )
        if agreed or disputed:
            continue
        await session.execute(
            sa.update(Account).where(Account.id == account_id).values(collections_hold=False)
        )
        lifted.append(account_id)
    return lifted


async def acknowledge_referral(db: Database, referral_id: int, staff: StaffMember) -> None:
    """Mark a queued referral as taken over by the collections department."""
    await _change_once(
        db,
        CollectionsReferral,
        referral_id,
        ("queued", "acknowledged"),
        {"acknowledged_at": utcnow()},
        staff,
        "collections_referral_acknowledged",
        "该转交记录不存在或已处理",
    )


# --- staff hours -----------------------------------------------------------------------


def next_staff_opening(now: datetime, hours: StaffHours) -> datetime | None:
    """None while negotiators are at work; else when they next start, in Beijing time."""
    local = now.astimezone(BEIJING)
    if local.isoweekday() in hours.weekdays and hours.opens <= local.time() < hours.closes:
        return None
    day = local.date()
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.isoweekday() not in hours.weekdays:
            continue
        opening = datetime.combine(candidate_day, hours.opens, tzinfo=BEIJING)
        if opening > local:
            return opening
    raise ValueError("staff hours name no working day")  # the policy validator prevents it


def complaint_category(text: str, escalation: Escalation) -> str:
    """What a complaint is about, by the policy's words; `other` if none match."""
    for category, words in escalation.complaint_categories.items():
        if any(word in text for word in words):
            return category
    return "other"


def should_refer_when_negotiator_declined(
    days_past_due: int, broken_plans: int, escalation: Escalation
) -> bool:
    """Whether the policy sends this account to collections when a person is declined."""
    rule = escalation.refer_when_negotiator_declined
    return days_past_due >= rule.min_days_past_due and broken_plans >= rule.min_broken_plans
