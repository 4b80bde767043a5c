"""When a declined negotiator sends an account to collections (`bot.domain.referrals`)."""

from __future__ import annotations

import pytest

from bot.domain.policy import DEFAULT_POLICY_PATH, load_policy
from bot.domain.referrals import should_refer_when_negotiator_declined

ESCALATION = load_policy(DEFAULT_POLICY_PATH).escalation


@pytest.mark.parametrize(
    ("days", "broken", "refer"),
    [
        (180, 1, True),
        (179, 1, False),
        (180, 0, False),
        (179, 5, False),
        (720, 3, True),
        (0, 0, False),
    ],
)
def test_should_refer_when_negotiator_declined(days: int, broken: int, refer: bool) -> None:
    rule = ESCALATION.refer_when_negotiator_declined
    assert (rule.min_days_past_due, rule.min_broken_plans) == (180, 1)
    assert should_refer_when_negotiator_declined(days, broken, ESCALATION) is refer
