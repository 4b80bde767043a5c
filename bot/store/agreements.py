"""Recording what the debtor agreed to, and what a negotiator must decide.

`record_agreement` writes an agreement, its whole schedule, the account's
collections hold and the audit entry in one transaction: after a crash either
all of it is there or none of it. Confirming the same offer twice records it
once and returns the first record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.negotiation import AccountPosition, Circumstances, Installment, Offer, Proposal
from bot.store import audit, encoding
from bot.store.accounts import AccountSummary
from bot.store.engine import Database
from bot.store.models import Account, Agreement, AgreementInstallment, NegotiationProposal

AGREEMENT_PREFIX = "XS"
PROPOSAL_PREFIX = "XT"
MAX_OFFER_ID_CHARS = 64


@dataclass(frozen=True)
class RecordedAgreement:
    """An agreement as stored, with its schedule."""

    reference: str
    plan: str
    currency: str
    monthly_amount: Decimal
    months: int
    total_payable: Decimal
    amount_waived: Decimal
    first_due: date
    last_due: date
    created_at: datetime
    schedule: tuple[Installment, ...]


def position(account: AccountSummary) -> AccountPosition:
    """The engine's view of an account."""
    return AccountPosition(
        account_id=account.account_id,
        product=account.product,
        currency=account.currency,
        overdue_principal=account.overdue_principal,
        interest=account.interest,
        penalty_fees=account.penalty_fees,
        days_past_due=account.days_past_due,
        outstanding_principal=account.outstanding_principal,
        installment_amount=account.installment_amount,
        missed_installments=account.missed_installments,
        broken_plans=account.broken_plans,
    )


def account_to_negotiate(accounts: list[AccountSummary]) -> AccountSummary | None:
    """The account a negotiation is about: the one with the most overdue (oldest first on ties)."""
    overdue = [account for account in accounts if account.overdue_total > 0]
    if not overdue:
        return None
    return max(overdue, key=lambda account: (account.overdue_total, -account.account_id))


def circumstances_record(circumstances: Circumstances) -> dict[str, Any]:
    return {
        "monthly_income": str(circumstances.monthly_income),
        "monthly_expenses": str(circumstances.monthly_expenses),
        "other_repayments": str(circumstances.other_repayments),
        "hardship_reason": circumstances.hardship_reason,
        "hardship_months": circumstances.hardship_months,
        "proposed_monthly": None
        if circumstances.proposed_monthly is None
        else str(circumstances.proposed_monthly),
        "available_funds": str(circumstances.available_funds),
    }


def account_record(account: AccountPosition) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "product": account.product,
        "currency": account.currency,
        "overdue_principal": str(account.overdue_principal),
        "interest": str(account.interest),
        "penalty_fees": str(account.penalty_fees),
        "overdue_total": str(account.overdue_total),
        "days_past_due": account.days_past_due,
        "broken_plans": account.broken_plans,
    }


def _recorded(row: Agreement, installments: list[AgreementInstallment]) -> RecordedAgreement:
    return RecordedAgreement(
        reference=row.reference,
        plan=row.plan,
        currency=row.currency,
        monthly_amount=row.monthly_amount,
        months=row.months,
        total_payable=row.total_payable,
        amount_waived=row.amount_waived,
        first_due=row.first_due,
        last_due=row.last_due,
        created_at=row.created_at,
        schedule=tuple(Installment(i.number, i.due_date, i.amount) for i in installments),
    )


async def _load(db: Database, query: sa.sql.Select) -> RecordedAgreement | None:
    async with db.session() as session:
        row = (await session.execute(query)).scalars().first()
        if row is None:
            return None
        installments = (
            (
                await session.execute(
                    sa.select(AgreementInstallment)
                    .where(AgreementInstallment.agreement_id == row.id)
                    .order_by(AgreementInstallment.number)
                )
            )
            .scalars()
            .all()
        )
    return _recorded(row, list(installments))


async def record_agreement(
    db: Database,
    *,
    offer_id: str,
    conversation_id: str,
    debtor_id: int,
    offer: Offer,
    account: AccountPosition,
    circumstances: Circumstances | None,
    today: date,
    replaces_active: bool = False,
) -> RecordedAgreement:
    """Store a confirmed offer, hold collections on the account and audit it, atomically.

    With `replaces_active` (a negotiator's new plan for an account that has one), the
    account's active agreement ends as `replaced` on `today` in the same transaction;
    otherwise an active agreement on the account raises `ActiveAgreementExists`.
    """
    if not offer_id or len(offer_id) > MAX_OFFER_ID_CHARS:
        raise ValueError("offer_id must be 1-64 characters")
    if offer.account_id != account.account_id:
        raise ValueError("the offer is for another account")
    if sum(item.amount for item in offer.schedule) != offer.total_payable:
        raise ValueError("the schedule does not add up to the total")
    terms = {
        "offer": offer.to_dict(),
        "account": account_record(account),
        "circumstances": None if circumstances is None else circumstances_record(circumstances),
    }
    try:
        async with db.session() as session:
            owner = await session.scalar(
                sa.select(Account.debtor_id).where(Account.id == account.account_id)
            )
            if owner != debtor_id:
                raise ValueError("the account does not belong to this debtor")
            if replaces_active:
                await _replace_active(session, account.account_id, conversation_id, today)
            row = Agreement(
                reference=encoding.reference(AGREEMENT_PREFIX, today),
                offer_id=offer_id,
                conversation_id=conversation_id,
                debtor_id=debtor_id,
                account_id=account.account_id,
                plan=offer.plan,
                currency=offer.currency,
                monthly_amount=offer.monthly_amount,
                months=offer.months,
                total_payable=offer.total_payable,
                amount_waived=offer.amount_waived,
                first_due=offer.first_due,
                last_due=offer.last_due,
                terms=json.dumps(terms, ensure_ascii=False, sort_keys=True),
            )
            session.add(row)
            await session.flush()
            session.add_all(
                AgreementInstallment(
                    agreement_id=row.id, number=i.number, due_date=i.due_date, amount=i.amount
                )
                for i in offer.schedule
            )
            await session.execute(
                sa.update(Account)
                .where(Account.id == account.account_id)
                .values(collections_hold=True)
            )
            await audit.record(
                session,
                audit.BOT_ACTOR,
                "agreement_recorded",
                conversation_id,
                debtor_id,
                {
                    "reference": row.reference,
                    "plan": offer.plan,
                    "account_id": account.account_id,
                    "monthly_amount": offer.monthly_amount,
                    "months": offer.months,
                    "total_payable": offer.total_payable,
                    "amount_waived": offer.amount_waived,
                    "first_due": offer.first_due,
                },
            )
            await session.commit()
    except IntegrityError:
        existing = await _load(db, sa.select(Agreement).where(Agreement.offer_id == offer_id))
        if existing is None:
            if await _active_on(db, account.account_id):
                raise ActiveAgreementExists(account.account_id) from None
            raise
        return existing
    recorded = await _load(db, sa.select(Agreement).where(Agreement.offer_id == offer_id))
    assert recorded is not None
    return recorded


async def _replace_active(
    session: AsyncSession, account_id: int, conversation_id: str, today: date
) -> None:
    """End the account's active agreement as `replaced`, audited with its reference."""
    active = (
        await session.execute(
            sa.select(Agreement.id, Agreement.reference, Agreement.debtor_id).where(
                Agreement.account_id == account_id, Agreement.status == "active"
            )
        )
    ).all()
    for agreement_id, reference, debtor_id in active:
        await session.execute(
            sa.update(Agreement)
            .where(Agreement.id == agreement_id, Agreement.status == "active")
            .values(status="replaced", ended_on=today)
        )
        await audit.record(
            session,
            audit.BOT_ACTOR,
            "agreement_replaced",
            conversation_id,
            debtor_id,
            {"reference": reference, "account_id": account_id},
        )


class ActiveAgreementExists(ValueError):
    """The account has an active agreement or promise already: one per account."""


async def _active_on(db: Database, account_id: int) -> bool:
    async with db.session() as session:
        found = await session.scalar(
            sa.select(Agreement.id).where(
                Agreement.account_id == account_id, Agreement.status == "active"
            )
        )
    return found is not None


async def latest_agreement(db: Database, debtor_id: int) -> RecordedAgreement | None:
    """The debtor's most recent agreement, with its schedule."""
    return await _load(
        db,
        sa.select(Agreement)
        .where(Agreement.debtor_id == debtor_id)
        .order_by(sa.desc(Agreement.created_at), sa.desc(Agreement.id)),
    )


async def record_proposal(
    db: Database,
    *,
    conversation_id: str,
    debtor_id: int,
    account: AccountPosition,
    circumstances: Circumstances | Mapping[str, Any],
    proposal: Proposal,
    ineligible: list[dict[str, Any]],
    today: date,
) -> str:
    """Store a case for a human negotiator and audit it; returns its reference.

    `circumstances` are complete, or, for a case recognised before any question
    was asked, whatever the debtor had already said (field name to slot value).
    """
    details = {
        "account": account_record(account),
        "circumstances": circumstances_record(circumstances)
        if isinstance(circumstances, Circumstances)
        else dict(circumstances),
        "draft": None if proposal.draft is None else proposal.draft.to_dict(),
        "ineligible": ineligible,
    }
    reference = encoding.reference(PROPOSAL_PREFIX, today)
    async with db.session() as session:
        session.add(
            NegotiationProposal(
                reference=reference,
                conversation_id=conversation_id,
                debtor_id=debtor_id,
                account_id=account.account_id,
                reason=proposal.reason,
                details=json.dumps(details, ensure_ascii=False, sort_keys=True),
            )
        )
        await audit.record(
            session,
            audit.BOT_ACTOR,
            "proposal_prepared",
            conversation_id,
            debtor_id,
            {"reference": reference, "reason": proposal.reason, "account_id": account.account_id},
        )
        await session.commit()
    return reference


async def latest_proposal(db: Database, conversation_id: str) -> dict[str, Any] | None:
    """The conversation's newest proposal for a negotiator, as stored, or None."""
    query = (
        sa.select(NegotiationProposal)
        .where(NegotiationProposal.conversation_id == conversation_id)
        .order_by(
            NegotiationProposal.__table__.c.created_at.desc(),
            NegotiationProposal.__table__.c.id.desc(),
        )
        .limit(1)
    )
    async with db.session() as session:
        proposal = (await session.execute(query)).scalar_one_or_none()
    if proposal is None:
        return None
    return {
        "reference": proposal.reference,
        "reason": proposal.reason,
        "status": proposal.status,
        "details": json.loads(proposal.details),
    }
