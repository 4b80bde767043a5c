"""When the policy sends an account to the collections department."""

from __future__ import annotations

from bot.domain.policy import Escalation


def should_refer_when_negotiator_declined(
    days_past_due: int, broken_plans: int, escalation: Escalation
) -> bool:
    """Whether the policy sends this account to collections when a person is declined."""
    rule = escalation.refer_when_negotiator_declined
    return days_past_due >= rule.min_days_past_due and broken_plans >= rule.min_broken_plans
