"""The negotiation policy file: loaded, validated and exposed as typed, frozen data.

Every threshold the negotiation engine applies comes from here, so that the bank
changes what is offered by editing YAML, not code. A bad value stops the process
that loads it with a message naming the file, the setting and what is wrong::

    python -m bot.domain.policy check bot/policies/negotiation.yml
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Extra,
    ValidationError,
    condecimal,
    conint,
    constr,
    root_validator,
    validator,
)

from bot.domain.critical import RULE_INTENTS, CriticalMessages, Rule, compile_patterns
from bot.domain.vocabulary import HANDOFF_REASONS, PLANS, PRODUCTS, STAFF_ROLES

#: The policy the assistant uses unless `NEGOTIATION_POLICY` names another file.
DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[1] / "policies" / "negotiation.yml"
#: Article 70: a personalised installment agreement may not exceed 5 years.
LEGAL_MAX_MONTHS = 60

Share = condecimal(ge=Decimal(0), le=Decimal(1))
Money = condecimal(ge=Decimal(0), max_digits=14, decimal_places=2)
Months = conint(ge=1, le=LEGAL_MAX_MONTHS)
Days = conint(ge=1, le=366)


class PolicyError(ValueError):
    """The policy file is missing, unreadable or has a bad value."""


class _Section(BaseModel):
    class Config:
        extra = Extra.forbid
        allow_mutation = False

    @validator("*", pre=True)
    def _no_floats(cls, value: Any) -> Any:  # noqa: N805 (pydantic validator)
        # YAML reads 0.7 as a float; amounts and shares must be written as strings.
        if isinstance(value, float):
            raise ValueError('write decimals in quotes, e.g. "0.70", so they are exact')
        return value


class _PlanSection(_Section):
    enabled: bool = True
    products: tuple[str, ...]

    @validator("products", each_item=True)
    def _known_product(cls, value: str) -> str:  # noqa: N805
        if value not in PRODUCTS:
            raise ValueError(f"unknown product {value!r}; known: {', '.join(PRODUCTS)}")
        return value


class Affordability(_Section):
    ratio: Share  # type: ignore[valid-type]
    pay_soon_months: Months  # type: ignore[valid-type]


class Schedule(_Section):
    first_due_days: Days  # type: ignore[valid-type]


class Plausibility(_Section):
    max_monthly_income: Money  # type: ignore[valid-type]
    max_expenses_to_income: conint(ge=1)  # type: ignore[valid-type]
    max_hardship_months: conint(ge=1, le=600)  # type: ignore[valid-type]


class PersonalizedInstallment(_PlanSection):
    min_months: Months  # type: ignore[valid-type]
    max_months: Months  # type: ignore[valid-type]
    fee_waiver_share: Share  # type: ignore[valid-type]

    @root_validator(skip_on_failure=True)
    def _range(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if values["min_months"] > values["max_months"]:
            raise ValueError("min_months is larger than max_months")
        return values


class LoanExtension(_PlanSection):
    max_hardship_months: Months  # type: ignore[valid-type]
    max_deferral_months: conint(ge=1, le=24)  # type: ignore[valid-type]
    max_repayment_months: Months  # type: ignore[valid-type]

    @root_validator(skip_on_failure=True)
    def _within_five_years(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if values["max_deferral_months"] + values["max_repayment_months"] > LEGAL_MAX_MONTHS:
            raise ValueError("max_deferral_months + max_repayment_months exceeds 60 months")
        return values


class FeeWaiver(_PlanSection):
    share: Share  # type: ignore[valid-type]
    pay_within_days: Days  # type: ignore[valid-type]
    min_penalty_fees: Money  # type: ignore[valid-type]


class LumpSumSettlement(_PlanSection):
    min_days_past_due: conint(ge=0)  # type: ignore[valid-type]
    interest_waiver_share: Share  # type: ignore[valid-type]
    fee_waiver_share: Share  # type: ignore[valid-type]
    pay_within_days: Days  # type: ignore[valid-type]


class PromiseToPay(_PlanSection):
    max_days_past_due: conint(ge=0)  # type: ignore[valid-type]
    max_overdue_total: Money  # type: ignore[valid-type]
    max_days_ahead: Days  # type: ignore[valid-type]
    min_share: Share  # type: ignore[valid-type]
    #: A promise may be split into at most this many payments, each by its date.
    max_parts: conint(ge=1, le=12) = 3  # type: ignore[valid-type]


class Authority(_Section):
    max_term_months: Months  # type: ignore[valid-type]
    max_waiver: Money  # type: ignore[valid-type]
    max_broken_plans: conint(ge=0)  # type: ignore[valid-type]


#: The plans a negotiator may build in the console (a loan extension's pause is not one).
STAFF_PLANS = ("personalized_installment", "lump_sum_settlement", "fee_waiver", "promise_to_pay")


class StaffRoleLimits(_Section):
    """What one staff role may agree to without a second pair of eyes."""

    max_waiver: Money  # type: ignore[valid-type]
    max_months: Months  # type: ignore[valid-type]
    #: Share of the account's interest the waiver may cover (fees are waived first).
    max_interest_waiver_share: Share  # type: ignore[valid-type]


class StaffAuthority(_Section):
    """Offers negotiators build from a proposal: role limits, approval and expiry."""

    plans: tuple[str, ...]
    #: An offer sent to the debtor and not answered within this many days expires.
    offer_expiry_days: Days  # type: ignore[valid-type]
    #: The first payment falls due at most this many days after the offer is built.
    max_first_due_days: Days  # type: ignore[valid-type]
    roles: dict[str, StaffRoleLimits]

    @validator("plans")
    def _known_plans(cls, value: tuple[str, ...]) -> tuple[str, ...]:  # noqa: N805
        unknown = sorted(set(value) - set(STAFF_PLANS))
        if unknown or not value:
            raise ValueError(f"list one or more of {', '.join(STAFF_PLANS)}")
        return value

    @validator("roles")
    def _every_role(cls, value: dict[str, StaffRoleLimits]) -> dict[str, StaffRoleLimits]:  # noqa: N805
        if sorted(value) != sorted(STAFF_ROLES):
            raise ValueError(f"give limits to exactly {', '.join(STAFF_ROLES)}")
        low, high = value["negotiator"], value["supervisor"]
        names = ("max_waiver", "max_months", "max_interest_waiver_share")
        if any(getattr(low, name) > getattr(high, name) for name in names):
            raise ValueError("a supervisor's limits must be at least a negotiator's")
        return value


class StaffHours(_Section):
    """When negotiators answer, in Beijing time; outside these a case waits in the queue."""

    #: ISO weekdays, 1 = Monday.
    weekdays: tuple[conint(ge=1, le=7), ...]  # type: ignore[valid-type]
    opens: time
    closes: time

    @root_validator(skip_on_failure=True)
    def _opens_before_closing(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if not values["weekdays"]:
            raise ValueError("weekdays: list at least one day")
        if values["opens"] >= values["closes"]:
            raise ValueError("opens must be before closes")
        return values


class CollectionsReferralRule(_Section):
    """Accounts referred to collections when the debtor declines a negotiator."""

    min_days_past_due: conint(ge=0)  # type: ignore[valid-type]
    min_broken_plans: conint(ge=0)  # type: ignore[valid-type]


class Escalation(_Section):
    """When a conversation goes to a person or to collections, and how urgently."""

    crisis_hotline: constr(regex=r"^[0-9-]{3,20}$")  # type: ignore[valid-type]
    #: Given at once, before anything else, when a life is in danger now.
    police_hotline: constr(regex=r"^[0-9-]{3,20}$")  # type: ignore[valid-type]
    ambulance_hotline: constr(regex=r"^[0-9-]{3,20}$")  # type: ignore[valid-type]
    regulator_hotline: constr(regex=r"^[0-9-]{3,20}$")  # type: ignore[valid-type]
    #: Lower is served first; distress must come first.
    priorities: dict[str, conint(ge=1, le=9)]  # type: ignore[valid-type]
    fallbacks_in_a_row: conint(ge=1, le=10)  # type: ignore[valid-type]
    #: Refusals after the options were explained once, before the referral.
    refusals_before_referral: conint(ge=1, le=5)  # type: ignore[valid-type]
    refer_when_negotiator_declined: CollectionsReferralRule
    staff_hours: StaffHours
    #: Complaint category -> words that mark it; the first match wins, else `other`.
    complaint_categories: dict[str, tuple[constr(min_length=1), ...]]  # type: ignore[valid-type]

    @validator("priorities")
    def _every_reason_once(cls, value: dict[str, int]) -> dict[str, int]:  # noqa: N805
        missing = sorted(set(HANDOFF_REASONS) - set(value))
        unknown = sorted(set(value) - set(HANDOFF_REASONS))
        if missing or unknown:
            raise ValueError(f"give a priority to exactly {', '.join(HANDOFF_REASONS)}")
        if value["distress"] != min(value.values()):
            raise ValueError("distress must have the highest priority (the lowest number)")
        return value

    @validator("complaint_categories")
    def _known_categories(
        cls,
        value: dict[str, tuple[str, ...]],  # noqa: N805
    ) -> dict[str, tuple[str, ...]]:
        if "other" in value:
            raise ValueError("'other' is implied: do not list words for it")
        for name in value:
            if not re.fullmatch(r"[a-z][a-z_]{1,31}", name):
                raise ValueError(f"category {name!r}: use lower-case letters and _")
        return value


#: Days a conversation or its audit trail is kept once nothing is open: a month to ten years.
RetentionDays = conint(strict=True, ge=30, le=3660)


class Retention(_Section):
    """How long conversations and their audit trail are kept once nothing is open (PIPL Art. 19).

    See `bot.domain.retention` for what "open" is and when the days start.
    """

    #: Transcript, saved state and the personal data of cases, referrals and agreements.
    conversation_days: RetentionDays  # type: ignore[valid-type]
    #: The conversation's audit log entries.
    audit_days: RetentionDays  # type: ignore[valid-type]

    @root_validator(skip_on_failure=True)
    def _audit_outlives_content(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if values["audit_days"] < values["conversation_days"]:
            raise ValueError(
                "audit_days is shorter than conversation_days: the audit trail must be kept"
                " at least as long as the conversation it records"
            )
        return values


class QuietHours(_Section):
    """No outbound contact from `starts` until `ends` (Beijing time; may span midnight)."""

    starts: time
    ends: time

    @root_validator(skip_on_failure=True)
    def _not_empty(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if values["starts"] == values["ends"]:
            raise ValueError("starts and ends are the same time: give a window of quiet hours")
        return values


class ReminderRetry(_Section):
    """A reminder that could not be delivered is tried again after a growing wait."""

    max_attempts: conint(strict=True, ge=1, le=20)  # type: ignore[valid-type]
    #: The wait after the first failure; it doubles after each further one.
    backoff_minutes: conint(strict=True, ge=1, le=1440)  # type: ignore[valid-type]
    max_backoff_minutes: conint(strict=True, ge=1, le=10080)  # type: ignore[valid-type]

    @root_validator(skip_on_failure=True)
    def _cap_above_first(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        if values["max_backoff_minutes"] < values["backoff_minutes"]:
            raise ValueError("max_backoff_minutes is shorter than backoff_minutes")
        return values


class Lifecycle(_Section):
    """After the agreement: reminders before due dates (see `bot.domain.reminders`)."""

    #: An installment still unpaid this many days after its due date breaks the agreement
    #: (see `bot.domain.payments`).
    grace_days: conint(strict=True, ge=0, le=60) = 3  # type: ignore[valid-type]

    #: A reminder is queued this many days before each installment's due date.
    reminder_days_before: conint(strict=True, ge=0, le=30) = 3  # type: ignore[valid-type]
    quiet_hours: QuietHours = QuietHours(starts=time(21, 0), ends=time(8, 0))
    #: At most this many reminders and notices per debtor in any seven days.
    reminders_per_week: conint(strict=True, ge=0, le=21) = 2  # type: ignore[valid-type]
    #: No reminder for this many days after a debtor's message of distress.
    distress_days: conint(strict=True, ge=0, le=365) = 30  # type: ignore[valid-type]
    retry: ReminderRetry = ReminderRetry(
        max_attempts=5, backoff_minutes=10, max_backoff_minutes=720
    )


Pattern = constr(min_length=1)


class CriticalRule(_Section):
    """Regular expressions that mark one class of critical message, and its exceptions."""

    match: tuple[Pattern, ...]  # type: ignore[valid-type]
    unless: tuple[Pattern, ...] = ()  # type: ignore[valid-type]

    @validator("match", "unless")
    def _valid_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:  # noqa: N805
        compile_patterns(value)
        return value

    @validator("match")
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:  # noqa: N805
        if not value:
            raise ValueError("give at least one pattern")
        return value


class CriticalMessagesSection(_Section):
    """The rules applied after the classifier; see `bot.domain.critical`."""

    imminent_danger: CriticalRule
    express_distress: CriticalRule
    complain: CriticalRule
    dispute_debt: CriticalRule
    request_human: CriticalRule
    unable_to_pay: CriticalRule
    refuse_payment: CriticalRule

    def compiled(self) -> CriticalMessages:
        """The rules, compiled, in the order `bot.domain.critical.RULE_INTENTS` tries them."""
        rules = []
        for name, intent in RULE_INTENTS.items():
            rule: CriticalRule = getattr(self, name)
            rules.append(
                Rule(name, intent, compile_patterns(rule.match), compile_patterns(rule.unless))
            )
        return CriticalMessages(rules)


class Policy(_Section):
    """The whole negotiation policy; see `bot/policies/negotiation.yml` for each setting."""

    version: conint(ge=1, le=1)  # type: ignore[valid-type]
    affordability: Affordability
    schedule: Schedule
    plausibility: Plausibility
    personalized_installment: PersonalizedInstallment
    loan_extension: LoanExtension
    fee_waiver: FeeWaiver
    lump_sum_settlement: LumpSumSettlement
    promise_to_pay: PromiseToPay
    authority: Authority
    staff_authority: StaffAuthority
    ranking: tuple[str, ...]
    #: domain.yml has choice buttons for one to three offers.
    max_offers: conint(ge=1, le=3)  # type: ignore[valid-type]
    escalation: Escalation
    retention: Retention
    lifecycle: Lifecycle = Lifecycle()
    critical_messages: CriticalMessagesSection

    @validator("ranking")
    def _every_plan_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:  # noqa: N805
        unknown = sorted(set(value) - set(PLANS))
        if unknown:
            raise ValueError(f"unknown plans {unknown}; known: {', '.join(PLANS)}")
        if sorted(value) != sorted(PLANS):
            raise ValueError(f"must list each of {', '.join(PLANS)} exactly once")
        return value

    @root_validator(skip_on_failure=True)
    def _authority_allows_the_shortest_installment(
        cls,  # noqa: N805
        values: dict[str, Any],
    ) -> dict[str, Any]:
        if values["authority"].max_term_months < values["personalized_installment"].min_months:
            raise ValueError(
                "authority.max_term_months is shorter than personalized_installment.min_months"
            )
        return values

    def rank(self, plan: str) -> int:
        """The position of `plan` in the offer order (0 first)."""
        return self.ranking.index(plan)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "__root__")
        lines.append(f"  {where or '(top level)'}: {item['msg']}")
    return "\n".join(lines)


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """A validated `Policy` from already-parsed YAML; `PolicyError` if anything is wrong."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping of settings at the top level")
    try:
        return Policy.parse_obj(data)
    except ValidationError as error:
        raise PolicyError(f"{source}: invalid negotiation policy\n{_describe(error)}") from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and validate a policy file (default: `NEGOTIATION_POLICY`, else the bundled one)."""
    chosen = Path(path or os.environ.get("NEGOTIATION_POLICY") or DEFAULT_POLICY_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(
            f"{chosen}: cannot read the negotiation policy ({error.strerror})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{chosen}: not valid YAML ({error})") from None
    return parse_policy(data, str(chosen))


@functools.lru_cache(maxsize=1)
def current_policy() -> Policy:
    """The policy of this process, loaded once."""
    return load_policy()


@functools.lru_cache(maxsize=1)
def current_critical_messages() -> CriticalMessages:
    """The critical-message rules of this process's policy, compiled once."""
    return current_policy().critical_messages.compiled()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.domain.policy")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a negotiation policy file")
    check.add_argument("path", nargs="?", default=None)
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.path)
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"ok: {len(policy.ranking)} plans, at most {policy.max_offers} offers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
