"""What the engine answers: offers with their schedules, ineligible plans, proposals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from bot.domain.money import ZERO
from bot.domain.positions import AccountPosition


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
