"""The negotiation engine: which plans a debtor can be offered, and on what terms.

Plain, typed and free of side effects: `assess` takes one account, the debtor's
circumstances, the day and the policy, and returns the eligible offers (ranked,
each with its full schedule), the ineligible plans (each with the reason and what
would make it eligible) and, when the assistant may not settle the case itself,
the proposal to put to a human negotiator. A negotiator's tool, a test or a
batch job can call it exactly as the chat does.

This module is the engine's entry point and re-exports its public names; the
parts live next to it:

- `bot.domain.money`: `Decimal` money rounded to the cent;
- `bot.domain.positions`: the account's position, the debtor's circumstances
  and what they can afford each month;
- `bot.domain.offers`: offers, ineligible plans, proposals and assessments;
- `bot.domain.schedules`: schedules of installments and the offers built on them;
- `bot.domain.plan_rules`: the rule of each plan;
- `bot.domain.promise_checks`: a debtor's own promise to pay, checked.

Money is `Decimal` rounded to the cent. A schedule always sums exactly to the
offer's total: the total is split into whole cents and the remainder cents go to
the first installments, so no installment exceeds the offer's monthly amount.

Affordability: a debtor can afford each month `affordable_monthly`, the disposable
income (income - essential expenses - other repayments) times the policy's ratio,
lowered to what the debtor said they can pay if that is less. A recurring offer's
monthly amount, plus any regular loan installment paid alongside it, never
exceeds that. A one-off payment (a settlement, a waiver, a promise) never exceeds
that plus the funds the debtor said they could raise at once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from bot.domain.money import CENT, ZERO, cents, cents_up
from bot.domain.offers import Assessment, Ineligible, Installment, Offer, Proposal
from bot.domain.plan_rules import RULES, RuleContext
from bot.domain.policy import Policy
from bot.domain.positions import (
    LOANS,
    AccountPosition,
    Circumstances,
    affordable_monthly,
    own_limit_applies,
)
from bot.domain.promise_checks import PromisePart, check_promise, check_promise_in_parts
from bot.domain.schedules import add_months, build_offer, shortest_term, split_evenly

__all__ = [
    "CENT",
    "LOANS",
    "ZERO",
    "AccountPosition",
    "Assessment",
    "Circumstances",
    "Ineligible",
    "Installment",
    "Offer",
    "PromisePart",
    "Proposal",
    "add_months",
    "affordable_monthly",
    "assess",
    "beyond_authority",
    "build_offer",
    "cents",
    "cents_up",
    "check_promise",
    "check_promise_in_parts",
    "counter_offer",
    "own_limit_applies",
    "shortest_term",
    "split_evenly",
]


def assess(
    account: AccountPosition, circumstances: Circumstances, today: date, policy: Policy
) -> Assessment:
    """Every plan for this account and these circumstances on `today`, under `policy`."""
    ctx = RuleContext(account, circumstances, today, policy)
    if account.overdue_total <= ZERO:
        # Nothing to negotiate: no plan of 0.00, and nothing for a negotiator either.
        return Assessment(
            account=account,
            affordable_monthly=ctx.monthly,
            offers=(),
            ineligible=tuple(Ineligible(plan, "nothing_overdue") for plan in policy.ranking),
            proposal=None,
        )
    offers: list[Offer] = []
    ineligible: list[Ineligible] = []
    drafts: list[tuple[Offer, Ineligible]] = []
    broken = account.broken_plans > policy.authority.max_broken_plans
    for plan in policy.ranking:
        section = getattr(policy, plan)
        if not section.enabled:
            ineligible.append(Ineligible(plan, "disabled"))
            continue
        if account.product not in section.products:
            ineligible.append(Ineligible(plan, "product"))
            continue
        offer, why_not = RULES[plan](ctx)
        if offer is not None and offer.total_payable <= ZERO:
            # Everything owed would be waived: not a plan to agree, a case for a person.
            offer, why_not = None, Ineligible(plan, "nothing_to_pay")
        if broken and offer is not None and why_not is None:
            why_not = Ineligible(plan, "broken_plans", {"broken_plans": str(account.broken_plans)})
        if why_not is None and offer is not None:
            offers.append(offer)
            continue
        assert why_not is not None
        ineligible.append(why_not)
        if offer is not None:
            drafts.append((offer, why_not))
    proposal = None
    if not offers:
        draft = drafts[0][0] if drafts else None
        if broken:
            proposal = Proposal("broken_plans", draft)
        elif ctx.monthly <= ZERO:
            proposal = Proposal("no_affordable_plan", draft)
        elif drafts:
            proposal = Proposal(drafts[0][1].reason, draft)
        else:
            # Money to spare but no plan: say why, never "nothing to spare".
            reasons = [i.reason for i in ineligible if i.reason not in ("disabled", "product")]
            if "unaffordable" in reasons:
                proposal = Proposal("unaffordable", None)
            else:
                proposal = Proposal(reasons[0] if reasons else "no_plan_for_product", None)
    return Assessment(
        account=account,
        affordable_monthly=ctx.monthly,
        offers=tuple(offers[: policy.max_offers]),
        ineligible=tuple(ineligible),
        proposal=proposal,
    )


def beyond_authority(account: AccountPosition, policy: Policy) -> str | None:
    """Why no plan the assistant may offer can exist for `account`, whatever the finances.

    Known from the account alone, so the debtor is not asked for figures that
    cannot lead to an offer: `broken_plans` (more broken plans than the policy
    lets the assistant overlook). None when an offer may be possible.
    """
    if account.overdue_total <= ZERO:
        return None
    if account.broken_plans > policy.authority.max_broken_plans:
        return "broken_plans"
    return None


def counter_offer(
    account: AccountPosition,
    circumstances: Circumstances,
    monthly: Decimal,
    today: date,
    policy: Policy,
) -> Assessment:
    """The assessment again with the debtor's own monthly figure as their limit."""
    return assess(account, replace(circumstances, proposed_monthly=monthly), today, policy)
