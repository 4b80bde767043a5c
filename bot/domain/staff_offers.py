"""Offers a negotiator builds from a proposal: computed, checked, and held to role limits.

The same engine as the assistant's offers (`bot.domain.schedules.build_offer`,
`Decimal` and exact cents): the negotiator chooses the plan, the first due
date, the number of months or the monthly amount, and a waiver; the engine
computes the schedule and the totals, or refuses with the reason when the terms
break the policy. A waiver covers penalty interest and fees first, then
interest, never principal.

Authority: the policy's `staff_authority.roles` give each role a largest
waiver, a longest term and a largest share of interest waived. An offer beyond
the limits of its builder's role needs a supervisor whose limits cover it, and
nobody approves their own offer beyond their own limits; an offer beyond every
role's limits cannot be built at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from bot.domain.money import CENT, ZERO
from bot.domain.offers import Offer
from bot.domain.policy import LEGAL_MAX_MONTHS, Policy, StaffRoleLimits
from bot.domain.positions import LOANS, AccountPosition, Circumstances, affordable_monthly
from bot.domain.schedules import build_offer, shortest_term

#: Plans paid at once, by a date: one payment, never months.
ONE_OFF_PLANS = ("lump_sum_settlement", "fee_waiver", "promise_to_pay")
#: The limits a role can exceed, in the order they are reported.
LIMITS = ("waiver", "months", "interest_share")
#: The role whose limits are the highest: it approves what others may not agree alone.
APPROVER_ROLE = "supervisor"
SHARE = Decimal("0.0001")


@dataclass(frozen=True)
class OfferTerms:
    """What the negotiator chose; `months` or `monthly_amount` (or both, if they agree)."""

    plan: str
    first_due: date
    months: int | None = None
    monthly_amount: Decimal | None = None
    waiver: Decimal = ZERO
    #: Why a monthly amount beyond what the circumstances allow is right (staff's words).
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "plan": self.plan,
            "first_due": self.first_due.isoformat(),
            "months": self.months,
            "monthly_amount": None if self.monthly_amount is None else str(self.monthly_amount),
            "waiver": str(self.waiver),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> OfferTerms:
        monthly = data.get("monthly_amount")
        months = data.get("months")
        return cls(
            plan=str(data["plan"]),
            first_due=date.fromisoformat(str(data["first_due"])),
            months=None if months is None else int(str(months)),
            monthly_amount=None if monthly is None else Decimal(str(monthly)),
            waiver=Decimal(str(data.get("waiver") or "0.00")),
            note=str(data.get("note") or ""),
        )


@dataclass(frozen=True)
class Refusal:
    """Terms the policy does not allow: why, and the figures that would be allowed.

    `reason` is one of: `plan_not_allowed`, `product`, `nothing_overdue`,
    `months_or_monthly`, `one_off_single_payment`, `term_too_long`,
    `term_too_short`, `monthly_mismatch`, `first_due_past`,
    `first_due_too_far`, `not_cents`, `waiver_of_principal`, `waiver_beyond_fees`,
    `waiver_not_allowed`, `nothing_to_pay`, `unaffordable_without_note`,
    `beyond_all_authority`.
    """

    reason: str
    needs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StaffOffer:
    """An offer computed from a negotiator's terms, and the role limits it exceeds."""

    terms: OfferTerms
    offer: Offer
    interest_waived: Decimal
    #: Share of the account's interest waived, to four decimals.
    interest_waiver_share: Decimal
    #: What the debtor can afford each month, when the circumstances are known.
    affordable_monthly: Decimal | None
    #: The limits of the builder's role this offer exceeds (`LIMITS`), none if within.
    beyond: tuple[str, ...]

    @property
    def needs_approval(self) -> bool:
        return bool(self.beyond)


def limits_exceeded(
    waiver: Decimal, months: int, interest_share: Decimal, limits: StaffRoleLimits
) -> tuple[str, ...]:
    """Which of `limits` an offer with these figures exceeds, in `LIMITS` order."""
    beyond = []
    if waiver > limits.max_waiver:
        beyond.append("waiver")
    if months > limits.max_months:
        beyond.append("months")
    if interest_share > limits.max_interest_waiver_share:
        beyond.append("interest_share")
    return tuple(beyond)


def _waiver_refusal(terms: OfferTerms, account: AccountPosition) -> Refusal | None:
    waiver = terms.waiver
    if waiver < ZERO or waiver != waiver.quantize(CENT):
        return Refusal("not_cents", {"field": "waiver"})
    if terms.plan == "promise_to_pay" and waiver > ZERO:
        return Refusal("waiver_not_allowed")
    if terms.plan == "fee_waiver" and waiver > account.penalty_fees:
        return Refusal("waiver_beyond_fees", {"waiver": str(account.penalty_fees)})
    if waiver > account.interest + account.penalty_fees:
        return Refusal(
            "waiver_of_principal", {"waiver": str(account.interest + account.penalty_fees)}
        )
    return None


def _months(terms: OfferTerms, total: Decimal, policy: Policy) -> int | Refusal:
    """The number of payments the terms ask for, or why they cannot be."""
    if terms.plan in ONE_OFF_PLANS:
        if terms.months not in (None, 1):
            return Refusal("one_off_single_payment")
        return 1
    if terms.monthly_amount is not None and (
        terms.monthly_amount <= ZERO or terms.monthly_amount != terms.monthly_amount.quantize(CENT)
    ):
        return Refusal("not_cents", {"field": "monthly_amount"})
    rule = policy.personalized_installment
    longest = min(rule.max_months, LEGAL_MAX_MONTHS)
    months = terms.months
    if months is None:
        if terms.monthly_amount is None:
            return Refusal("months_or_monthly")
        months = shortest_term(total, terms.monthly_amount)
    if months > longest:
        return Refusal("term_too_long", {"months": str(longest)})
    if months < rule.min_months:
        return Refusal("term_too_short", {"months": str(rule.min_months)})
    return months


def build_staff_offer(
    terms: OfferTerms,
    account: AccountPosition,
    circumstances: Circumstances | None,
    role: str,
    today: date,
    policy: Policy,
) -> StaffOffer | Refusal:
    """The offer `terms` make for `account` on `today`, built by a member of `role`."""
    authority = policy.staff_authority
    if terms.plan not in authority.plans:
        return Refusal("plan_not_allowed")
    if account.product not in getattr(policy, terms.plan).products:
        return Refusal("product")
    if account.overdue_total <= ZERO:
        return Refusal("nothing_overdue")
    if terms.first_due < today:
        return Refusal("first_due_past")
    latest = today + timedelta(days=authority.max_first_due_days)
    if terms.first_due > latest:
        return Refusal("first_due_too_far", {"date": latest.isoformat()})
    refused = _waiver_refusal(terms, account)
    if refused is not None:
        return refused
    total = account.overdue_total - terms.waiver
    if total <= ZERO:
        return Refusal("nothing_to_pay")
    months = _months(terms, total, policy)
    if isinstance(months, Refusal):
        return months
    one_off = terms.plan in ONE_OFF_PLANS
    regular = (account.installment_amount or ZERO) if account.product in LOANS else ZERO
    offer = build_offer(
        terms.plan,
        account,
        total,
        months,
        terms.first_due,
        terms.waiver,
        one_off=one_off,
        interest_stops=not one_off,
        concurrent_monthly=ZERO if one_off else regular,
    )
    if terms.monthly_amount is not None and not one_off:
        if terms.months is not None and offer.monthly_amount != terms.monthly_amount:
            return Refusal("monthly_mismatch", {"monthly": str(offer.monthly_amount)})
    affordable = None if circumstances is None else affordable_monthly(circumstances, policy)
    if not terms.note.strip():
        if affordable is None:
            return Refusal("unaffordable_without_note")
        limit = affordable + (circumstances.available_funds if one_off and circumstances else ZERO)
        payment = offer.total_payable if one_off else offer.monthly_amount + regular
        if payment > limit:
            return Refusal("unaffordable_without_note", {"monthly": str(affordable)})
    interest_waived = max(terms.waiver - account.penalty_fees, ZERO)
    share = (interest_waived / account.interest).quantize(SHARE) if interest_waived else ZERO
    if limits_exceeded(terms.waiver, offer.months, share, authority.roles[APPROVER_ROLE]):
        return Refusal("beyond_all_authority")
    return StaffOffer(
        terms=terms,
        offer=offer,
        interest_waived=interest_waived,
        interest_waiver_share=share,
        affordable_monthly=affordable,
        beyond=limits_exceeded(terms.waiver, offer.months, share, authority.roles[role]),
    )


def approval_refusal(
    *,
    approver_id: int,
    approver_role: str,
    builder_id: int,
    waiver: Decimal,
    months: int,
    interest_share: Decimal,
    policy: Policy,
) -> str | None:
    """Why this staff member may not approve the offer, or None if they may.

    `own_offer`: nobody approves their own offer beyond their own limits (an
    offer awaiting approval is beyond them); `not_supervisor`: only supervisors
    approve; `beyond_approver_limits`: the offer exceeds the approver's limits.
    """
    if approver_id == builder_id:
        return "own_offer"
    if approver_role != APPROVER_ROLE:
        return "not_supervisor"
    limits = policy.staff_authority.roles[approver_role]
    if limits_exceeded(waiver, months, interest_share, limits):
        return "beyond_approver_limits"
    return None


def expires_at(sent_at: datetime, policy: Policy) -> datetime:
    """When an offer sent at `sent_at` expires unanswered."""
    return sent_at + timedelta(days=policy.staff_authority.offer_expiry_days)


def is_expired(sent_at: datetime, now: datetime, policy: Policy) -> bool:
    """Whether an offer sent at `sent_at` is past its answer period at `now`."""
    return now >= expires_at(sent_at, policy)


def recompute(
    terms: OfferTerms,
    account: AccountPosition,
    circumstances: Circumstances | None,
    today: date,
    policy: Policy,
) -> Offer | None:
    """The offer the same terms make on today's balances, or None if no longer allowed.

    At confirmation the role limits were already settled by the approval: only
    the policy's rules and the figures count.
    """
    built = build_staff_offer(terms, account, circumstances, APPROVER_ROLE, today, policy)
    return built.offer if isinstance(built, StaffOffer) else None
