"""The negotiation engine: which plans a debtor can be offered, and on what terms.

Plain, typed and free of side effects: `assess` takes one account, the debtor's
circumstances, the day and the policy, and returns the eligible offers (ranked,
each with its full schedule), the ineligible plans (each with the reason and what
would make it eligible) and, when the assistant may not settle the case itself,
the proposal to put to a human negotiator. A negotiator's tool, a test or a
batch job can call it exactly as the chat does.

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

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from bot.domain.policy import LEGAL_MAX_MONTHS, Policy

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
LOANS = ("consumer_loan", "car_loan", "mortgage")


def cents(amount: Decimal) -> Decimal:
    """`amount` rounded down to the cent (in the debtor's favour for waivers, limits)."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day if it has fewer days."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class AccountPosition:
    """What one overdue account stands at; every amount in `currency`."""

    account_id: int
    product: str
    overdue_principal: Decimal
    interest: Decimal
    penalty_fees: Decimal
    days_past_due: int
    currency: str = "CNY"
    outstanding_principal: Decimal = ZERO
    installment_amount: Decimal | None = None
    missed_installments: int = 0
    broken_plans: int = 0

    @property
    def overdue_total(self) -> Decimal:
        return self.overdue_principal + self.interest + self.penalty_fees


@dataclass(frozen=True)
class Circumstances:
    """The debtor's monthly finances and hardship, as they described them."""

    monthly_income: Decimal
    monthly_expenses: Decimal
    other_repayments: Decimal = ZERO
    hardship_reason: str = "other"
    #: How long the hardship is expected to last; None when the debtor cannot say.
    hardship_months: int | None = None
    #: What the debtor thinks they can pay each month, if they said.
    proposed_monthly: Decimal | None = None
    #: What the debtor could pay at once (savings, family), if anything.
    available_funds: Decimal = ZERO

    @property
    def disposable_income(self) -> Decimal:
        return self.monthly_income - self.monthly_expenses - self.other_repayments


@dataclass(frozen=True)
class Installment:
    number: int
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class Offer:
    """A plan the debtor may accept, with its complete schedule."""

    plan: str
    account_id: int
    currency: str
    #: The largest payment of the schedule (the others are equal or one cent less).
    monthly_amount: Decimal
    months: int
    first_due: date
    last_due: date
    total_payable: Decimal
    amount_waived: Decimal
    schedule: tuple[Installment, ...]
    #: A single payment by a date, rather than monthly installments.
    one_off: bool = False
    #: Months with no payment before the schedule starts (loan extension).
    deferral_months: int = 0
    #: The loan's regular installment, due alongside each plan payment.
    concurrent_monthly: Decimal = ZERO
    #: Whether interest stops accruing while the plan is kept.
    interest_stops: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (amounts and dates as strings), for slots and records."""
        return {
            "plan": self.plan,
            "account_id": self.account_id,
            "currency": self.currency,
            "monthly_amount": str(self.monthly_amount),
            "months": self.months,
            "first_due": self.first_due.isoformat(),
            "last_due": self.last_due.isoformat(),
            "total_payable": str(self.total_payable),
            "amount_waived": str(self.amount_waived),
            "one_off": self.one_off,
            "deferral_months": self.deferral_months,
            "concurrent_monthly": str(self.concurrent_monthly),
            "interest_stops": self.interest_stops,
            "schedule": [
                [item.number, item.due_date.isoformat(), str(item.amount)] for item in self.schedule
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Offer:
        return cls(
            plan=str(data["plan"]),
            account_id=int(data["account_id"]),
            currency=str(data["currency"]),
            monthly_amount=Decimal(data["monthly_amount"]),
            months=int(data["months"]),
            first_due=date.fromisoformat(data["first_due"]),
            last_due=date.fromisoformat(data["last_due"]),
            total_payable=Decimal(data["total_payable"]),
            amount_waived=Decimal(data["amount_waived"]),
            one_off=bool(data["one_off"]),
            deferral_months=int(data["deferral_months"]),
            concurrent_monthly=Decimal(data["concurrent_monthly"]),
            interest_stops=bool(data["interest_stops"]),
            schedule=tuple(
                Installment(int(n), date.fromisoformat(d), Decimal(a))
                for n, d, a in data["schedule"]
            ),
        )


@dataclass(frozen=True)
class Ineligible:
    """A plan the debtor cannot be offered now: why, and what would change that.

    `reason` is one of: `disabled`, `product`, `broken_plans`, `no_fees`,
    `not_overdue_long_enough`, `overdue_too_long`, `amount_too_large`,
    `not_temporary`, `can_pay_soon`, `unaffordable`, `term_too_long`,
    `waiver_too_large`, `nothing_to_pay`, `nothing_overdue`. `needs` holds the
    figures that would make it eligible
    (for example `monthly`: the payment needed, or `funds`: the sum to raise).
    """

    plan: str
    reason: str
    needs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """A case for a human negotiator: why the assistant may not settle it, and a draft."""

    reason: str
    draft: Offer | None


@dataclass(frozen=True)
class Assessment:
    account: AccountPosition
    affordable_monthly: Decimal
    offers: tuple[Offer, ...]
    ineligible: tuple[Ineligible, ...]
    proposal: Proposal | None


def own_limit_applies(circumstances: Circumstances, policy: Policy) -> bool:
    """Whether the debtor's own monthly figure, not the policy's share, sets the limit."""
    if circumstances.proposed_monthly is None:
        return False
    share = cents(max(circumstances.disposable_income, ZERO) * policy.affordability.ratio)
    return cents(max(circumstances.proposed_monthly, ZERO)) < share


def affordable_monthly(circumstances: Circumstances, policy: Policy) -> Decimal:
    """The most the debtor can pay each month on this policy (never negative)."""
    limit = cents(max(circumstances.disposable_income, ZERO) * policy.affordability.ratio)
    if circumstances.proposed_monthly is not None:
        limit = min(limit, cents(max(circumstances.proposed_monthly, ZERO)))
    return limit


def split_evenly(total: Decimal, count: int) -> list[Decimal]:
    """`total` in `count` amounts that differ by at most a cent and sum to it exactly."""
    if count < 1:
        raise ValueError("count must be at least 1")
    total_cents = int((total / CENT).to_integral_value())
    base, extra = divmod(total_cents, count)
    return [(Decimal(base + (1 if i < extra else 0)) * CENT) for i in range(count)]


def _schedule(total: Decimal, count: int, first_due: date) -> tuple[Installment, ...]:
    return tuple(
        Installment(i + 1, add_months(first_due, i), amount)
        for i, amount in enumerate(split_evenly(total, count))
    )


def _offer(
    plan: str,
    account: AccountPosition,
    total: Decimal,
    months: int,
    first_due: date,
    waived: Decimal,
    **extra: Any,
) -> Offer:
    total = total.quantize(CENT)
    # Never more installments than cents owed: no installment is ever 0.00.
    months = max(1, min(months, int(total / CENT)))
    schedule = _schedule(total, months, first_due)
    return Offer(
        plan=plan,
        account_id=account.account_id,
        currency=account.currency,
        monthly_amount=max(item.amount for item in schedule),
        months=months,
        first_due=schedule[0].due_date,
        last_due=schedule[-1].due_date,
        total_payable=total,
        amount_waived=waived,
        schedule=schedule,
        **extra,
    )


def shortest_term(total: Decimal, monthly_limit: Decimal, min_months: int = 1) -> int:
    """The fewest months (at least `min_months`) whose largest installment fits the limit."""
    if total <= ZERO:
        return min_months
    if monthly_limit <= ZERO:
        raise ValueError("no term fits a limit of zero")
    months = max(min_months, int((total / monthly_limit).to_integral_value(ROUND_CEILING)))
    while cents_up(total / months) > monthly_limit:
        months += 1
    return months


class _Context:
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
_Outcome = tuple[Offer | None, Ineligible | None]


def _personalized_installment(ctx: _Context) -> _Outcome:
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
        draft = _offer(
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
    offer = _offer(
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


def _loan_extension(ctx: _Context) -> _Outcome:
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
    offer = _offer(
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


def _one_off(ctx: _Context, plan: str, waived: Decimal, days: int) -> _Outcome:
    account = ctx.account
    total = account.overdue_total - waived
    if total > ctx.one_off_limit:
        return None, Ineligible(plan, "unaffordable", {"funds": str(total - ctx.monthly)})
    offer = _offer(plan, account, total, 1, ctx.today + timedelta(days=days), waived, one_off=True)
    if waived > ctx.policy.authority.max_waiver:
        return offer, Ineligible(
            plan, "waiver_too_large", {"waiver": str(ctx.policy.authority.max_waiver)}
        )
    return offer, None


def _fee_waiver(ctx: _Context) -> _Outcome:
    rule = ctx.policy.fee_waiver
    if ctx.account.penalty_fees < rule.min_penalty_fees or ctx.account.penalty_fees <= ZERO:
        return None, Ineligible("fee_waiver", "no_fees")
    waived = cents(ctx.account.penalty_fees * rule.share)
    return _one_off(ctx, "fee_waiver", waived, rule.pay_within_days)


def _lump_sum_settlement(ctx: _Context) -> _Outcome:
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


def _promise_to_pay(ctx: _Context) -> _Outcome:
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


_RULES = {
    "personalized_installment": _personalized_installment,
    "loan_extension": _loan_extension,
    "fee_waiver": _fee_waiver,
    "lump_sum_settlement": _lump_sum_settlement,
    "promise_to_pay": _promise_to_pay,
}


def assess(
    account: AccountPosition, circumstances: Circumstances, today: date, policy: Policy
) -> Assessment:
    """Every plan for this account and these circumstances on `today`, under `policy`."""
    ctx = _Context(account, circumstances, today, policy)
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
        offer, why_not = _RULES[plan](ctx)
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


#: One part of a debtor's own promise: an amount (None: whatever is left) and its date.
PromisePart = tuple[Decimal | None, date]


def check_promise(
    account: AccountPosition, amount: Decimal | None, due: date, today: date, policy: Policy
) -> Offer | Ineligible:
    """A debtor's own promise to pay `amount` (default: the overdue total) by `due`.

    Reasons beyond those of `Ineligible`: `date_past`, `date_too_far` (needs `date`:
    the last allowed day), `amount_too_small` (needs `amount`), `amount_above_total`.
    """
    return check_promise_in_parts(account, [(amount, due)], today, policy)


def check_promise_in_parts(
    account: AccountPosition, parts: Sequence[PromisePart], today: date, policy: Policy
) -> Offer | Ineligible:
    """A promise to pay in parts ("先还两千，剩下的月底前还清"), checked as one promise.

    Each part has its date; only the last may leave its amount open, and it is
    then the rest of the overdue total. The window, the minimum share and the
    overdue total apply to the parts together. Reasons beyond `check_promise`'s:
    `too_many_parts` (needs `parts`), `dates_out_of_order`, `amount_missing`.
    """
    rule, plan = policy.promise_to_pay, "promise_to_pay"
    if not rule.enabled:
        return Ineligible(plan, "disabled")
    if account.product not in rule.products:
        return Ineligible(plan, "product")
    if account.broken_plans > policy.authority.max_broken_plans:
        return Ineligible(plan, "broken_plans", {"broken_plans": str(account.broken_plans)})
    if account.days_past_due > rule.max_days_past_due:
        return Ineligible(plan, "overdue_too_long", {"days": str(rule.max_days_past_due)})
    if account.overdue_total > rule.max_overdue_total:
        return Ineligible(plan, "amount_too_large", {"amount": str(rule.max_overdue_total)})
    if not parts or len(parts) > rule.max_parts:
        return Ineligible(plan, "too_many_parts", {"parts": str(rule.max_parts)})
    last_day = today + timedelta(days=rule.max_days_ahead)
    dates = [due for _, due in parts]
    if min(dates) < today:
        return Ineligible(plan, "date_past", {"date": last_day.isoformat()})
    if max(dates) > last_day:
        return Ineligible(plan, "date_too_far", {"date": last_day.isoformat()})
    if any(later <= earlier for earlier, later in zip(dates, dates[1:], strict=False)):
        return Ineligible(plan, "dates_out_of_order")
    if any(amount is None for amount, _ in parts[:-1]):
        return Ineligible(plan, "amount_missing")
    minimum = cents_up(account.overdue_total * rule.min_share)
    given = [cents(amount) for amount, _ in parts if amount is not None]
    if any(amount <= ZERO for amount in given):
        return Ineligible(plan, "amount_too_small", {"amount": str(minimum)})
    amounts = given if parts[-1][0] is not None else [*given, account.overdue_total - sum(given)]
    total = sum(amounts, ZERO)
    if total > account.overdue_total:
        return Ineligible(plan, "amount_above_total", {"amount": str(account.overdue_total)})
    if total < minimum or total <= ZERO:
        return Ineligible(plan, "amount_too_small", {"amount": str(minimum)})
    if amounts[-1] <= ZERO:  # "the rest" when the parts before it already pay everything
        return Ineligible(plan, "amount_above_total", {"amount": str(account.overdue_total)})
    return Offer(
        plan=plan,
        account_id=account.account_id,
        currency=account.currency,
        monthly_amount=max(amounts),
        months=len(amounts),
        first_due=dates[0],
        last_due=dates[-1],
        total_payable=total,
        amount_waived=ZERO,
        schedule=tuple(
            Installment(number, due, amount)
            for number, (amount, due) in enumerate(zip(amounts, dates, strict=True), start=1)
        ),
        one_off=len(amounts) == 1,
    )


def counter_offer(
    account: AccountPosition,
    circumstances: Circumstances,
    monthly: Decimal,
    today: date,
    policy: Policy,
) -> Assessment:
    """The assessment again with the debtor's own monthly figure as their limit."""
    return assess(account, replace(circumstances, proposed_monthly=monthly), today, policy)
