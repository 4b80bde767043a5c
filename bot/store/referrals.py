"""Referrals of debtors' accounts to the collections department.

The action server refers a debtor who refuses to pay (or declines a person),
and staff do when they close a case as `referred_to_collections`; supervisors
see the queue in the console and acknowledge what the department took over.
Every change is audited in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.clock import beijing_today
from bot.store import audit
from bot.store.encoding import dumps, reference
from bot.store.engine import Database
from bot.store.models import CollectionsReferral, StaffMember, utcnow
from bot.store.worklist import change_once, json_ready, second_try_on_conflict, view_values

REFERRAL_PREFIX = "CS"


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
        return json_ready(self)


def _referral_view(referral: CollectionsReferral) -> ReferralView:
    return ReferralView(**view_values(referral, ReferralView))


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
            reference = await insert_referral(
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

    return await second_try_on_conflict(
        attempt, f"could not refer conversation {conversation_id!r}"
    )


async def insert_referral(
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
    new_reference = reference(REFERRAL_PREFIX, beijing_today())
    session.add(
        CollectionsReferral(
            reference=new_reference,
            conversation_id=conversation_id,
            channel=channel,
            debtor_id=debtor_id,
            account_id=account_id,
            reason=reason,
            summary=dumps(summary),
        )
    )
    await audit.record(
        session,
        actor,
        "collections_referral",
        conversation_id,
        debtor_id,
        {"reference": new_reference, "reason": reason, "account_id": account_id},
    )
    await session.flush()
    return new_reference


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


async def acknowledge_referral(db: Database, referral_id: int, staff: StaffMember) -> None:
    """Mark a queued referral as taken over by the collections department.

    `CaseError("referral_handled")` if it does not exist or was acknowledged already.
    """
    await change_once(
        db,
        CollectionsReferral,
        referral_id,
        ("queued", "acknowledged"),
        {"acknowledged_at": utcnow()},
        staff,
        "collections_referral_acknowledged",
        "referral_handled",
    )
