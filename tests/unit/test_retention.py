"""The retention rule: what keeps a conversation, and the day it is past retention."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot.domain.clock import BEIJING
from bot.domain.retention import (
    AGREEMENT,
    CASE,
    DISPUTE,
    PROMISE,
    REFERRAL,
    Item,
    agreement_item,
    beijing_day,
    case_item,
    cutoff,
    cutoff_instant,
    referral_item,
    verdict,
)

DAYS = 30
#: 2026-01-01 23:30 in Beijing, which is still 15:30 on the same day in UTC.
LATE_EVENING = datetime(2026, 1, 1, 15, 30, tzinfo=timezone.utc)
#: 2026-01-02 00:30 in Beijing, 16:30 on 1 January in UTC.
AFTER_MIDNIGHT = datetime(2026, 1, 1, 16, 30, tzinfo=timezone.utc)
CLOSED = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)


def test_kept_through_the_limit_day_and_past_the_day_after() -> None:
    """Last activity on 1 January, 30 days: kept through 31 January, past from 1 February."""
    limit = date(2026, 1, 31)
    before = verdict(LATE_EVENING, [], limit - timedelta(days=1), DAYS)
    on = verdict(LATE_EVENING, [], limit, DAYS)
    after = verdict(LATE_EVENING, [], limit + timedelta(days=1), DAYS)
    assert (before.past, on.past, after.past) == (False, False, True)
    assert on.kept_until == after.kept_until == limit
    assert after.since == date(2026, 2, 1)
    assert after.open == ()


def test_days_are_beijing_days() -> None:
    """After midnight in Beijing is the next day, though it is still the 1st in UTC."""
    assert beijing_day(LATE_EVENING) == date(2026, 1, 1)
    assert beijing_day(AFTER_MIDNIGHT) == date(2026, 1, 2)
    assert verdict(LATE_EVENING, [], date(2026, 2, 1), DAYS).past
    kept = verdict(AFTER_MIDNIGHT, [], date(2026, 2, 1), DAYS)
    assert not kept.past
    assert (kept.kept_until, kept.since) == (date(2026, 2, 1), date(2026, 2, 2))
    assert verdict(AFTER_MIDNIGHT, [], date(2026, 2, 2), DAYS).past


def test_an_open_item_keeps_the_conversation_however_old() -> None:
    items = [Item(CASE, CLOSED), Item(PROMISE, None), Item(DISPUTE, None)]
    result = verdict(LATE_EVENING, items, date(2036, 1, 1), DAYS)
    assert not result.past
    assert result.open == (DISPUTE, PROMISE)
    assert (result.kept_until, result.since) == (None, None)


def test_the_days_start_at_the_end_of_the_last_item_when_later() -> None:
    """A promise due after the last message: the days count from its due date."""
    items = [Item(PROMISE, date(2026, 3, 1)), Item(CASE, CLOSED)]
    result = verdict(LATE_EVENING, items, date(2026, 3, 31), DAYS)
    assert not result.past
    assert result.kept_until == date(2026, 3, 31)
    assert verdict(LATE_EVENING, items, date(2026, 4, 1), DAYS).since == date(2026, 4, 1)


def test_a_case_is_open_until_closed() -> None:
    def case(status: str, reason: str = "request_human", outcome: str | None = None) -> Item:
        return case_item(
            status=status, reason=reason, holds_collection=False, outcome=outcome, ended=CLOSED
        )

    assert case("waiting") == Item(CASE, None)
    assert case("claimed") == Item(CASE, None)
    assert case("closed", outcome="other") == Item(CASE, CLOSED)


def test_a_logged_dispute_stays_open() -> None:
    """Closed as `dispute_logged` it is still being investigated; any other outcome ends it."""
    logged = case_item(
        status="closed",
        reason="dispute",
        holds_collection=True,
        outcome="dispute_logged",
        ended=CLOSED,
    )
    answered = case_item(
        status="closed", reason="dispute", holds_collection=True, outcome="other", ended=CLOSED
    )
    # A case that put accounts on hold is a dispute whatever its recorded reason.
    holding = case_item(
        status="closed",
        reason="complaint",
        holds_collection=True,
        outcome="dispute_logged",
        ended=CLOSED,
    )
    assert logged == Item(DISPUTE, None)
    assert answered == Item(DISPUTE, CLOSED)
    assert holding == Item(DISPUTE, None)


def test_an_agreement_or_promise_is_open_while_active_and_ends_no_earlier_than_due() -> None:
    due = date(2027, 6, 30)
    assert agreement_item(plan="fee_waiver", status="active", last_due=due) == Item(AGREEMENT, None)
    assert agreement_item(plan="promise_to_pay", status="active", last_due=due) == Item(
        PROMISE, None
    )
    assert agreement_item(plan="promise_to_pay", status="kept", last_due=due) == Item(PROMISE, due)
    assert agreement_item(plan="personalized_installment", status="broken", last_due=due) == Item(
        AGREEMENT, due
    )


def test_a_referral_is_open_until_acknowledged() -> None:
    assert referral_item(status="queued", ended=CLOSED) == Item(REFERRAL, None)
    assert referral_item(status="acknowledged", ended=CLOSED) == Item(REFERRAL, CLOSED)


def test_the_cutoff_is_the_last_day_of_activity_that_is_past() -> None:
    today = date(2026, 2, 1)
    assert cutoff(today, DAYS) == date(2026, 1, 1)
    assert verdict(LATE_EVENING, [], today, DAYS).past
    # Everything before midnight of 2 January, Beijing time, may be past; nothing after.
    moment = cutoff_instant(today, DAYS)
    assert moment == datetime(2026, 1, 2, tzinfo=BEIJING)
    assert moment.tzinfo == timezone.utc
    assert LATE_EVENING < moment <= AFTER_MIDNIGHT


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        verdict(datetime(2026, 1, 1), [], date(2026, 3, 1), DAYS)
    with pytest.raises(ValueError, match="at least 1"):
        verdict(LATE_EVENING, [], date(2026, 3, 1), 0)
