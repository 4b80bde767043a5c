"""The rule of each plan: whether it can be offered, on what terms, and if not why.

A recurring offer's monthly amount, plus any regular loan installment paid
alongside it, never exceeds what the debtor can afford each month
(`bot.domain.positions.affordable_monthly`). A one-off payment (a settlement, a
waiver, a promise) never exceeds that plus the funds the debtor said they could
raise at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from bot.domain.money import ZERO, cents, cents_up
from bot.domain.offers import Ineligible, Offer
from bot.domain.policy import LEGAL_MAX_MONTHS, Policy
from bot.domain.positions import LOANS, AccountPosition, Circumstances, affordable_monthly
from bot.domain.schedules import add_months, build_offer, shortest_term


class RuleContext:
    """What every plan rule needs; built once per assessment."""

    def __init__(
        self, account: AccountPosition, circumstances: Circumstances, today: date, policy: Policy
    ) -> None:
        self.account = account
        self.circumstances = circumstances
        self.today = today
        self.policy = policy
        self.monthly = affordable_monthly(circumstances, policy)
        self.one_off_limit = self.monthly + max(circumstances.available_funds, ZERO)
        self.first_due = today + timedelta(days=policy.schedule.first_due_days)


#: What a plan rule returns: an offer, or why not. A rule returns an offer beyond
#: the assistant's authority together with the Ineligible reason, as the draft of
#: a proposal for a negotiator.
Outcome = tuple[Offer | None, Ineligible | None]


def _personalized_installment(ctx: RuleContext) -> Outcome:
    rule, account, plan = (
        ctx.policy.personalized_installment,
        ctx.account,
        "personalized_installment",
    )
    waived = cents(account.penalty_fees * rule.fee_waiver_share)
    total = account.overdue_total - waived
    if account.overdue_total <= ctx.monthly * ctx.policy.affordability.pay_soon_months:
        return None, Ineligible(plan, "can_pay_soon", {"monthly": str(ctx.monthly)})
    max_months = min(rule.max_months, ctx.policy.authority.max_term_months, LEGAL_MAX_MONTHS)
    # On a loan, the regular installment is paid alongside and must fit as well.
    regular = (account.installment_amount or ZERO) if account.product in LOANS else ZERO
    room = ctx.monthly - regular
    needed = cents_up(total / max_months)
    if room <= ZERO or needed > room:
        draft = build_offer(
            plan,
            account,
            total,
            LEGAL_MAX_MONTHS,
            ctx.first_due,
            waived,
            interest_stops=True,
            concurrent_monthly=regular,
        )
        return draft, Ineligible(plan, "unaffordable", {"monthly": str(needed + regular)})
    months = shortest_term(total, room, rule.min_months)
    offer = build_offer(
        plan,
        account,
        total,
        months,
        ctx.first_due,
        waived,
        interest_stops=True,
        concurrent_monthly=regular,
    )
    if waived > ctx.policy.authority.max_waiver:
        return offer, Ineligible(
            plan, "waiver_too_large", {"waiver": str(ctx.policy.authority.max_waiver)}
        )
    return offer, None


def _loan_extension(ctx: RuleContext) -> Outcome:
    rule, account, plan = ctx.policy.loan_extension, ctx.account, "loan_extension"
    hardship = ctx.circumstances.hardship_months
    if hardship is None or hardship > rule.max_hardship_months:
        return None, Ineligible(plan, "not_temporary", {"months": str(rule.max_hardship_months)})
    regular = account.installment_amount or ZERO
    room = ctx.monthly - regular
    total = account.overdue_total
    deferral = max(1, min(hardship, rule.max_deferral_months))
    first_due = add_months(ctx.first_due, deferral)
    # The pause counts towards the term: the whole plan stays within the authority.
    longest = min(rule.max_repayment_months, ctx.policy.authority.max_term_months - deferral)
    if longest < 1:
        return None, Ineligible(plan, "term_too_long", {"months": str(deferral)})
    needed = cents_up(total / longest) + regular
    if room <= ZERO or needed > ctx.monthly:
        return None, Ineligible(plan, "unaffordable", {"monthly": str(needed)})
    months = shortest_term(total, room)
    offer = build_offer(
        plan,
        account,
        total,
        months,
        first_due,
        ZERO,
        deferral_months=deferral,
        concurrent_monthly=regular,
    )
    return offer, None


def _one_off(ctx: RuleContext, plan: str, waived: Decimal, days: int) -> Outcome:
    account = ctx.account
    total = account.overdue_total - waived
    if total > ctx.one_off_limit:
        return None, Ineligible(plan, "unaffordable", {"funds": str(total - ctx.monthly)})
    offer = build_offer(
        plan, account, total, 1, ctx.today + timedelta(days=days), waived, one_off=True
    )
    if waived > ctx.policy.authority.max_waiver:
        return offer, Ineligible(
            plan, "waiver_too_large", {"waiver": str(ctx.policy.authority.max_waiver)}
        )
    return offer, None


def _fee_waiver(ctx: RuleContext) -> Outcome:
    rule = ctx.policy.fee_waiver
    if ctx.account.penalty_fees < rule.min_penalty_fees or ctx.account.penalty_fees <= ZERO:
        return None, Ineligible("fee_waiver", "no_fees")
    waived = cents(ctx.account.penalty_fees * rule.share)
    return _one_off(ctx, "fee_waiver", waived, rule.pay_within_days)


def _lump_sum_settlement(ctx: RuleContext) -> Outcome:
    rule, account = ctx.policy.lump_sum_settlement, ctx.account
    if account.days_past_due < rule.min_days_past_due:
        return None, Ineligible(
            "lump_sum_settlement", "not_overdue_long_enough", {"days": str(rule.min_days_past_due)}
        )
    # Principal is never waived: only interest and fees.
    waived = cents(account.interest * rule.interest_waiver_share) + cents(
        account.penalty_fees * rule.fee_waiver_share
    )
    return _one_off(ctx, "lump_sum_settlement", waived, rule.pay_within_days)


def _promise_to_pay(ctx: RuleContext) -> Outcome:
    rule, account = ctx.policy.promise_to_pay, ctx.account
    if account.days_past_due > rule.max_days_past_due:
        return None, Ineligible(
            "promise_to_pay", "overdue_too_long", {"days": str(rule.max_days_past_due)}
        )
    if account.overdue_total > rule.max_overdue_total:
        return None, Ineligible(
            "promise_to_pay", "amount_too_large", {"amount": str(rule.max_overdue_total)}
        )
    return _one_off(ctx, "promise_to_pay", ZERO, rule.max_days_ahead)


RULES: dict[str, Callable[[RuleContext], Outcome]] = {
    "personalized_installment": _personalized_installment,
    "loan_extension": _loan_extension,
    "fee_waiver": _fee_waiver,
    "lump_sum_settlement": _lump_sum_settlement,
    "promise_to_pay": _promise_to_pay,
}
