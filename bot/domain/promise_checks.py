"""A debtor's own promise to pay, in one payment or in parts, checked against the policy.

The parts come from what the debtor said (`bot.domain.promises.promise_parts`);
an accepted promise is an `Offer` of the plan `promise_to_pay` whose schedule
holds the parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from bot.domain.money import ZERO, cents, cents_up
from bot.domain.offers import Ineligible, Installment, Offer
from bot.domain.policy import Policy
from bot.domain.positions import AccountPosition

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
