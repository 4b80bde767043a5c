"""What a debtor owes on one account, what they can spare, and so what they can afford.

Affordability: a debtor can afford each month `affordable_monthly`, the disposable
income (income - essential expenses - other repayments) times the policy's ratio,
lowered to what the debtor said they can pay if that is less.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.money import ZERO, cents
from bot.domain.policy import Policy

#: The products that are loans, with a regular installment of their own.
LOANS = ("consumer_loan", "car_loan", "mortgage")


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
