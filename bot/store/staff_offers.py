"""Offers negotiators build from a proposal, from approval to the debtor's answer.

An offer moves `awaiting_approval` (beyond its builder's limits) -> `approved`
(by a supervisor, or at once within the builder's limits) -> `sent` (to the
debtor's conversation) -> `accepted`, `declined` or `expired`. A case has at
most one open offer: building another supersedes it (`superseded`); an offer
whose terms no longer hold on the current balances at confirmation is
`changed`. Every step is audited with the staff member, in the transaction
of the change.

Acceptance records the agreement with `bot.store.agreements.record_agreement`
(agreement, schedule, collections hold and audit, atomically, once per offer),
then in one more transaction marks the offer `accepted`, the proposal
`accepted` and closes the case as `plan_agreed` with the agreement's reference.
A second confirmation records nothing more and completes whatever the first
left undone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.negotiation import AccountPosition, Circumstances, Offer
from bot.domain.policy import Policy
from bot.domain.staff_offers import StaffOffer, approval_refusal, expires_at
from bot.store import audit
from bot.store.agreements import RecordedAgreement, circumstances_record, record_agreement
from bot.store.columns import utcnow
from bot.store.encoding import dumps, reference
from bot.store.engine import Database
from bot.store.models import HandoffCase, NegotiationProposal, StaffMember
from bot.store.staff_offer_records import (
    OFFER_STATUSES,
    OPEN_STATUSES,
    OfferError,
    OfferView,
    StaffOfferRecord,
    T,
    view_of,
)
from bot.store.worklist import staff_actor

OFFER_PREFIX = "XF"

__all__ = [
    "OFFER_STATUSES",
    "OPEN_STATUSES",
    "OfferError",
    "OfferView",
    "StaffOfferRecord",
]


async def _audit(
    session: Any, actor: str, action: str, row: StaffOfferRecord, **details: Any
) -> None:
    await audit.record(
        session,
        actor,
        action,
        row.conversation_id,
        row.debtor_id,
        {"offer": row.reference, "case_id": row.case_id, **details},
    )


# --- building and approving -------------------------------------------------------------


async def create_offer(
    db: Database,
    *,
    case_id: int,
    conversation_id: str,
    debtor_id: int,
    proposal_reference: str | None,
    built: StaffOffer,
    circumstances: Circumstances | None,
    builder: StaffMember,
    today: date,
) -> OfferView:
    """Store an offer built for a case (superseding its open one) and audit it.

    Within the builder's limits it is approved at once; beyond them it waits
    for a supervisor.
    """
    offer = built.offer
    now = utcnow()
    async with db.session() as session:
        open_rows = (
            (
                await session.execute(
                    sa.select(StaffOfferRecord).where(
                        StaffOfferRecord.case_id == case_id, T.c.status.in_(OPEN_STATUSES)
                    )
                )
            )
            .scalars()
            .all()
        )
        for old in open_rows:
            old.status = "superseded"
            await _audit(session, staff_actor(builder), "staff_offer_superseded", old)
        await session.flush()
        row = StaffOfferRecord(
            reference=reference(OFFER_PREFIX, today),
            case_id=case_id,
            proposal_reference=proposal_reference,
            conversation_id=conversation_id,
            debtor_id=debtor_id,
            account_id=offer.account_id,
            plan=offer.plan,
            months=offer.months,
            monthly_amount=offer.monthly_amount,
            total_payable=offer.total_payable,
            amount_waived=offer.amount_waived,
            first_due=offer.first_due,
            terms=dumps(
                {
                    "terms": built.terms.to_dict(),
                    "offer": offer.to_dict(),
                    "beyond": list(built.beyond),
                    "interest_share": str(built.interest_waiver_share),
                    "circumstances": None
                    if circumstances is None
                    else circumstances_record(circumstances),
                    "affordable_monthly": None
                    if built.affordable_monthly is None
                    else str(built.affordable_monthly),
                }
            ),
            status="awaiting_approval" if built.needs_approval else "approved",
            created_by=builder.id,
            approved_at=None if built.needs_approval else now,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        await _audit(
            session,
            staff_actor(builder),
            "staff_offer_built",
            row,
            plan=offer.plan,
            months=offer.months,
            monthly_amount=offer.monthly_amount,
            total_payable=offer.total_payable,
            amount_waived=offer.amount_waived,
            first_due=offer.first_due,
            beyond_limits=list(built.beyond),
            status=row.status,
        )
        await session.commit()
        return view_of(row)


async def approve_offer(
    db: Database, offer_id: int, approver: StaffMember, policy: Policy
) -> OfferView:
    """A supervisor approves an offer beyond its builder's limits; `OfferError` if not allowed."""
    view = await get_offer(db, offer_id)
    if view is None:
        raise OfferError("absent")
    refusal = approval_refusal(
        approver_id=approver.id,
        approver_role=approver.role,
        builder_id=view.created_by,
        waiver=view.amount_waived,
        months=view.months,
        interest_share=view.interest_share,
        policy=policy,
    )
    async with db.session() as session:
        row = await session.get(StaffOfferRecord, offer_id)
        assert row is not None
        if refusal is not None:
            await _audit(
                session, staff_actor(approver), "staff_offer_approval_refused", row, why=refusal
            )
            await session.commit()
            raise OfferError(refusal)  # type: ignore[arg-type]
        result = await session.execute(
            sa.update(StaffOfferRecord)
            .where(StaffOfferRecord.id == offer_id, StaffOfferRecord.status == "awaiting_approval")
            .values(status="approved", approved_by=approver.id, approved_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            raise OfferError("not_awaiting")
        await _audit(
            session, staff_actor(approver), "staff_offer_approved", row, by=approver.username
        )
        await session.commit()
    approved = await get_offer(db, offer_id)
    assert approved is not None
    return approved


async def mark_sent(
    db: Database, offer_id: int, staff: StaffMember, policy: Policy, now: datetime | None = None
) -> OfferView:
    """The offer reached the debtor's conversation (again, for one sent already)."""
    now = now or utcnow()
    async with db.session() as session:
        row = await session.get(StaffOfferRecord, offer_id)
        if row is None or row.status not in ("approved", "sent"):
            raise OfferError("not_sendable")
        row.status = "sent"
        row.sent_at = now
        row.expires_at = expires_at(now, policy)
        await _audit(
            session, staff_actor(staff), "staff_offer_sent", row, expires_at=row.expires_at
        )
        await session.commit()
        return view_of(row)


# --- reading ------------------------------------------------------------------------------


async def get_offer(db: Database, offer_id: int) -> OfferView | None:
    async with db.session() as session:
        row = await session.get(StaffOfferRecord, offer_id)
        return None if row is None else view_of(row)


async def offers_of_case(db: Database, case_id: int) -> list[OfferView]:
    """The case's offers, newest first."""
    query = (
        sa.select(StaffOfferRecord)
        .where(StaffOfferRecord.case_id == case_id)
        .order_by(T.c.id.desc())
    )
    async with db.session() as session:
        return [view_of(row) for row in (await session.execute(query)).scalars()]


async def awaiting_approval(db: Database) -> list[OfferView]:
    """The offers waiting for a supervisor, oldest first."""
    query = (
        sa.select(StaffOfferRecord)
        .where(StaffOfferRecord.status == "awaiting_approval")
        .order_by(StaffOfferRecord.id)
    )
    async with db.session() as session:
        return [view_of(row) for row in (await session.execute(query)).scalars()]


async def sent_offer_of(
    db: Database, conversation_id: str, statuses: tuple[str, ...] = ("sent",)
) -> OfferView | None:
    """The conversation's newest offer in `statuses`: by default, the one waiting for an answer."""
    query = (
        sa.select(StaffOfferRecord)
        .where(StaffOfferRecord.conversation_id == conversation_id, T.c.status.in_(statuses))
        .order_by(T.c.id.desc())
        .limit(1)
    )
    async with db.session() as session:
        row = (await session.execute(query)).scalars().first()
        return None if row is None else view_of(row)


# --- the debtor's answer -------------------------------------------------------------------


async def expire_offers(db: Database, now: datetime | None = None) -> list[OfferView]:
    """Mark every sent offer past its answer period `expired`, and audit each."""
    now = now or utcnow()
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    sa.select(StaffOfferRecord).where(
                        StaffOfferRecord.status == "sent", T.c.expires_at <= now
                    )
                )
            )
            .scalars()
            .all()
        )
        expired = []
        for row in rows:
            row.status = "expired"
            row.answered_at = now
            await _audit(session, "system", "staff_offer_expired", row)
            expired.append(row)
        await session.commit()
        return [view_of(row) for row in expired]


async def _answer(db: Database, offer_id: int, status: str, action: str) -> bool:
    async with db.session() as session:
        result = await session.execute(
            sa.update(StaffOfferRecord)
            .where(StaffOfferRecord.id == offer_id, StaffOfferRecord.status == "sent")
            .values(status=status, answered_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            return False
        row = await session.get(StaffOfferRecord, offer_id)
        assert row is not None
        await _audit(session, audit.BOT_ACTOR, action, row)
        await session.commit()
        return True


async def decline_offer(db: Database, offer_id: int) -> bool:
    """The debtor declined the offer; False if it was not waiting for an answer."""
    return await _answer(db, offer_id, "declined", "staff_offer_declined")


async def mark_changed(db: Database, offer_id: int) -> bool:
    """The offer's terms no longer hold on the current balances: nothing was recorded."""
    return await _answer(db, offer_id, "changed", "staff_offer_changed")


def agreement_offer_id(view: OfferView) -> str:
    """The `agreements.offer_id` of a staff offer: one agreement per offer."""
    return f"staff-{view.reference}"


async def accept_offer(
    db: Database,
    view: OfferView,
    *,
    offer: Offer,
    account: AccountPosition,
    circumstances: Circumstances | None,
    today: date,
) -> RecordedAgreement:
    """The debtor confirmed `offer` (the terms recomputed on today's balances): record it all."""
    recorded = await record_agreement(
        db,
        offer_id=agreement_offer_id(view),
        conversation_id=view.conversation_id,
        debtor_id=view.debtor_id,
        offer=offer,
        account=account,
        circumstances=circumstances,
        today=today,
        # A negotiator's plan for an account that has one is its change, as agreed.
        replaces_active=True,
    )
    now = utcnow()
    async with db.session() as session:
        row = await session.get(StaffOfferRecord, view.id)
        assert row is not None
        if row.status != "accepted":
            row.status = "accepted"
            row.answered_at = now
            row.agreement_reference = recorded.reference
            await _audit(
                session, audit.BOT_ACTOR, "staff_offer_accepted", row, agreement=recorded.reference
            )
        if row.proposal_reference is not None:
            await session.execute(
                sa.update(NegotiationProposal)
                .where(NegotiationProposal.reference == row.proposal_reference)
                .values(status="accepted")
                .execution_options(synchronize_session=False)
            )
        case = await session.get(HandoffCase, row.case_id)
        if case is not None and case.status != "closed":
            case.status = "closed"
            case.outcome = "plan_agreed"
            case.note = recorded.reference
            case.closed_at = now
            case.claimed_at = case.claimed_at or now
            case.staff_id = case.staff_id or row.created_by
            await audit.record(
                session,
                audit.BOT_ACTOR,
                "handoff_closed",
                case.conversation_id,
                case.debtor_id,
                {
                    "reference": case.reference,
                    "outcome": "plan_agreed",
                    "agreement": recorded.reference,
                    "offer": row.reference,
                },
            )
        await session.commit()
    return recorded
