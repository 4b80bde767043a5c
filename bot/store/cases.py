"""Handoff cases for human negotiators.

Plain functions over the database, free of Rasa: the action server opens cases,
the staff console claims, answers and closes them. Every change is audited in
the same transaction as the change itself.

A case moves `waiting` -> `claimed` (by one staff member) -> `closed` (with an
outcome). A conversation has at most one open case: opening another one for it
returns the open one, raised to the more urgent priority. A dispute puts the
disputed accounts on hold (`bot.store.holds`) until staff close its case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.clock import beijing_today
from bot.domain.policy import Escalation
from bot.domain.vocabulary import HANDOFF_OUTCOMES
from bot.store import audit
from bot.store.encoding import dumps, reference
from bot.store.engine import Database
from bot.store.holds import HELD_ACCOUNTS, held_accounts, lift_holds, put_on_hold
from bot.store.models import HandoffCase, StaffMember, utcnow
from bot.store.referrals import insert_referral
from bot.store.worklist import (
    CaseError,
    change_once,
    json_ready,
    second_try_on_conflict,
    staff_actor,
    view_values,
)

CASE_PREFIX = "RG"


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
        return json_ready(self)


@dataclass(frozen=True)
class OpenedCase:
    """What opening a case did: the case, and whether it is new."""

    id: int
    reference: str
    priority: int
    created: bool


def case_view(case: HandoffCase, staff_name: str | None) -> CaseView:
    """The view of a case row, with the display name of its staff member."""
    return CaseView(**view_values(case, CaseView), staff_name=staff_name)


def with_staff_name() -> sa.sql.Select:
    """Cases and the display name of the staff member holding each (or None)."""
    return sa.select(HandoffCase, StaffMember.display_name).outerjoin(
        StaffMember, StaffMember.id == HandoffCase.staff_id
    )


# --- opening ---------------------------------------------------------------------------


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
    return await second_try_on_conflict(
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
            await put_on_hold(session, held)
        if existing is not None:
            existing.holds_collection = existing.holds_collection or holds
            # The newest summary is the fullest; a more urgent reason moves it up.
            before = json.loads(existing.summary)
            merged = {**before, **summary}
            merged[HELD_ACCOUNTS] = sorted(set(held_accounts(before)) | set(held))
            if not merged[HELD_ACCOUNTS]:
                del merged[HELD_ACCOUNTS]
            existing.summary = dumps(merged)
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
            reference=reference(CASE_PREFIX, beijing_today()),
            conversation_id=conversation_id,
            channel=channel,
            debtor_id=debtor_id,
            account_id=account_id,
            reason=reason,
            category=category,
            priority=priority,
            holds_collection=holds,
            summary=dumps(summary),
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


# --- reading ---------------------------------------------------------------------------


async def open_case_of(db: Database, conversation_id: str) -> CaseView | None:
    """The conversation's case that is waiting or held by staff, if any."""
    async with db.session() as session:
        row = (
            await session.execute(
                with_staff_name().where(
                    HandoffCase.conversation_id == conversation_id,
                    HandoffCase.status != "closed",
                )
            )
        ).one_or_none()
    return None if row is None else case_view(row[0], row[1])


async def queue(
    db: Database, *, statuses: tuple[str, ...] = ("waiting", "claimed")
) -> list[CaseView]:
    """Cases in `statuses`, most urgent first, then oldest first."""
    async with db.session() as session:
        rows = (
            await session.execute(
                with_staff_name()
                .where(HandoffCase.__table__.c.status.in_(statuses))
                .order_by(HandoffCase.priority, HandoffCase.created_at, HandoffCase.id)
            )
        ).all()
    return [case_view(case, name) for case, name in rows]


async def get_case(db: Database, case_id: int) -> CaseView | None:
    """One case by id, or None."""
    async with db.session() as session:
        row = (
            await session.execute(with_staff_name().where(HandoffCase.id == case_id))
        ).one_or_none()
    return None if row is None else case_view(row[0], row[1])


# --- staff actions ---------------------------------------------------------------------


async def claim_case(db: Database, case_id: int, staff: StaffMember) -> CaseView:
    """Give a waiting case to `staff`.

    `CaseError("claim_lost")` if it is not waiting: someone else got it first,
    or it is closed, or there is no such case.
    """
    await change_once(
        db,
        HandoffCase,
        case_id,
        ("waiting", "claimed"),
        {"claimed_at": utcnow()},
        staff,
        "handoff_claimed",
        "claim_lost",
    )
    view = await get_case(db, case_id)
    assert view is not None
    return view


async def record_staff_reply(db: Database, case: CaseView, staff: StaffMember, text: str) -> None:
    """Audit that `staff` answered the debtor (the text itself is in the transcript)."""
    async with db.session() as session:
        await audit.record(
            session,
            staff_actor(staff),
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

    `CaseError` with code `unknown_outcome`, `closed_or_absent` (no such case,
    or closed already) or `not_holder` (a negotiator closing a case they do not hold).
    """
    if outcome not in HANDOFF_OUTCOMES:
        raise CaseError("unknown_outcome", repr(outcome))
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
                raise CaseError("closed_or_absent")
            raise CaseError("not_holder")
        case = await session.get(HandoffCase, case_id)
        assert case is not None
        if outcome == "referred_to_collections" and case.debtor_id is not None:
            # Staff referred the debtor: the referral joins the collections queue.
            await insert_referral(
                session,
                actor=staff_actor(staff),
                conversation_id=case.conversation_id,
                channel=case.channel,
                debtor_id=case.debtor_id,
                account_id=case.account_id,
                reason="staff_referral",
                summary={**json.loads(case.summary), "case": case.reference, "note": note},
            )
        lifted: list[int] = []
        if case.holds_collection and outcome != "dispute_logged":
            held = held_accounts(json.loads(case.summary)) or [case.account_id]
            lifted = await lift_holds(session, case, [a for a in held if a is not None])
        await audit.record(
            session,
            staff_actor(staff),
            "handoff_closed",
            case.conversation_id,
            case.debtor_id,
            {"reference": case.reference, "outcome": outcome, "holds_lifted": lifted},
        )
        await session.commit()
    view = await get_case(db, case_id)
    assert view is not None
    return view
