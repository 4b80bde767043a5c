"""When negotiators are at work (`bot.domain.staff_hours`), by the bundled policy and others."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from bot.domain.clock import BEIJING
from bot.domain.policy import DEFAULT_POLICY_PATH, StaffHours, load_policy
from bot.domain.staff_hours import next_staff_opening

ESCALATION = load_policy(DEFAULT_POLICY_PATH).escalation
UTC = timezone.utc


def bj(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    """A time in Beijing."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)


# 2026-03-02 is a Monday; 2026-03-07 a Saturday; 2026-03-08 a Sunday.
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (bj(2026, 3, 2, 9, 0), None),  # opening minute
        (bj(2026, 3, 2, 14, 30), None),
        (bj(2026, 3, 2, 20, 59, 59), None),
        (datetime(2026, 3, 2, 6, 0, tzinfo=UTC), None),  # 14:00 in Beijing
        (bj(2026, 3, 7, 12, 0), None),  # Saturdays are working days
        (bj(2026, 3, 3, 8, 59), bj(2026, 3, 3, 9, 0)),  # before opening: that day
        (bj(2026, 3, 3, 0, 0), bj(2026, 3, 3, 9, 0)),
        (bj(2026, 3, 3, 21, 0), bj(2026, 3, 4, 9, 0)),  # closing minute: next day
        (bj(2026, 3, 3, 23, 30), bj(2026, 3, 4, 9, 0)),
        (bj(2026, 3, 7, 21, 0), bj(2026, 3, 9, 9, 0)),  # Saturday evening: Monday
        (bj(2026, 3, 8, 8, 0), bj(2026, 3, 9, 9, 0)),  # Sunday morning
        (bj(2026, 3, 8, 12, 0), bj(2026, 3, 9, 9, 0)),  # Sunday at noon
        # In UTC: Tuesday 23:30 UTC is Wednesday 07:30 in Beijing.
        (datetime(2026, 3, 3, 23, 30, tzinfo=UTC), bj(2026, 3, 4, 9, 0)),
        # Sunday 16:00 UTC is Monday 00:00 in Beijing.
        (datetime(2026, 3, 8, 16, 0, tzinfo=UTC), bj(2026, 3, 9, 9, 0)),
        # Saturday 13:00 UTC is Saturday 21:00 in Beijing.
        (datetime(2026, 3, 7, 13, 0, tzinfo=UTC), bj(2026, 3, 9, 9, 0)),
        # Monday 00:59 UTC is 08:59 in Beijing.
        (datetime(2026, 3, 9, 0, 59, tzinfo=UTC), bj(2026, 3, 9, 9, 0)),
    ],
)
def test_next_staff_opening(now: datetime, expected: datetime | None) -> None:
    opening = next_staff_opening(now, ESCALATION.staff_hours)
    assert opening == expected
    if expected is not None:
        assert opening is not None
        assert opening.utcoffset() == timedelta(hours=8)
        assert (opening.date(), opening.time()) == (expected.date(), expected.time())


def test_the_bundled_staff_hours() -> None:
    hours = ESCALATION.staff_hours
    assert (tuple(hours.weekdays), hours.opens, hours.closes) == (
        (1, 2, 3, 4, 5, 6),
        time(9, 0),
        time(21, 0),
    )


def test_next_staff_opening_with_other_hours() -> None:
    weekdays_only = StaffHours(weekdays=(1, 2, 3, 4, 5), opens=time(8, 30), closes=time(17, 0))
    # Friday 17:00 -> Monday 08:30.
    assert next_staff_opening(bj(2026, 3, 6, 17, 0), weekdays_only) == bj(2026, 3, 9, 8, 30)
    # Only Wednesdays: a Wednesday evening waits a week.
    wednesdays = StaffHours(weekdays=(3,), opens=time(10, 0), closes=time(12, 0))
    assert next_staff_opening(bj(2026, 3, 4, 12, 0), wednesdays) == bj(2026, 3, 11, 10, 0)
    assert next_staff_opening(bj(2026, 3, 4, 11, 0), wednesdays) is None
