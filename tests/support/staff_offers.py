"""A case beyond the assistant's authority, with its proposal, as the assistant leaves it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from bot.domain.negotiation import Circumstances, Proposal
from bot.domain.policy import current_policy
from bot.store.accounts import account_summaries
from bot.store.agreements import position, record_proposal
from bot.store.cases import open_case
from bot.store.engine import Database
from bot.store.models import Debtor

#: What 王芳 said in the chat: enough to judge what she can afford (2800.00 a month).
CIRCUMSTANCES = Circumstances(Decimal("6000.00"), Decimal("2000.00"), hardship_reason="business")


@dataclass(frozen=True)
class ProposalCase:
    case_id: int
    case_reference: str
    proposal_reference: str
    debtor_id: int
    account_id: int


async def proposal_case(
    db: Database, conversation_id: str, today: date, name: str = "王芳"
) -> ProposalCase:
    """The debtor's case for a negotiator, with the proposal the assistant stored."""
    async with db.session() as session:
        debtor_id = (
            await session.execute(sa.select(Debtor.id).where(Debtor.full_name == name))
        ).scalar_one()
    [summary] = [a for a in await account_summaries(db, debtor_id) if a.overdue_total > 0][:1]
    account = position(summary)
    reference = await record_proposal(
        db,
        conversation_id=conversation_id,
        debtor_id=debtor_id,
        account=account,
        circumstances=CIRCUMSTANCES,
        proposal=Proposal("broken_plans", None),
        ineligible=[{"plan": "personalized_installment", "reason": "broken_plans", "needs": {}}],
        today=today,
    )
    opened = await open_case(
        db,
        conversation_id=conversation_id,
        channel="rest",
        reason="beyond_authority",
        summary={"verified": True, "proposal": {"reference": reference}},
        escalation=current_policy().escalation,
        debtor_id=debtor_id,
        account_id=account.account_id,
    )
    return ProposalCase(opened.id, opened.reference, reference, debtor_id, account.account_id)
