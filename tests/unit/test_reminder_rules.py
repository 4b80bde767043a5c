"""When a debtor may be reminded and how (`bot.domain.reminders`), and its policy settings."""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta, timezone

import pytest
import yaml

from bot.domain.clock import BEIJING
from bot.domain.policy import DEFAULT_POLICY_PATH, PolicyError, QuietHours, parse_policy
from bot.domain.reminders import (
    Contactability,
    channel_of,
    due_for_reminder,
    earliest_send,
    in_quiet_hours,
    may_remind,
    next_attempt,
    send_time,
    under_weekly_cap,
    wechat_route,
)

RAW = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
LIFECYCLE = parse_policy(RAW).lifecycle
QUIET = LIFECYCLE.quiet_hours


def beijing(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=BEIJING)


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        (beijing(10, 7, 59), True),
        (beijing(10, 8, 0), False),
        (beijing(10, 20, 59), False),
        (beijing(10, 21, 0), True),
        (beijing(10, 23, 30), True),
        # 13:30 UTC is 21:30 in Beijing, wherever the server runs.
        (datetime(2026, 12, 10, 13, 30, tzinfo=timezone.utc), True),
        (datetime(2026, 12, 10, 1, 0, tzinfo=timezone.utc), False),
    ],
)
def test_quiet_hours_are_beijing_time_and_span_midnight(at: datetime, quiet: bool) -> None:
    assert in_quiet_hours(at, QUIET) is quiet


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(starts=time(12, 0), ends=time(13, 30))
    assert in_quiet_hours(beijing(10, 12, 15), lunch)
    assert not in_quiet_hours(beijing(10, 22, 0), lunch)
    assert earliest_send(beijing(10, 12, 15), lunch) == beijing(10, 13, 30)


@pytest.mark.parametrize(
    ("at", "send"),
    [
        (beijing(10, 10, 0), beijing(10, 10, 0)),
        (beijing(10, 22, 30), beijing(11, 8, 0)),
        (beijing(11, 3, 0), beijing(11, 8, 0)),
    ],
)
def test_a_reminder_due_in_quiet_hours_waits_for_the_morning(at: datetime, send: datetime) -> None:
    assert earliest_send(at, QUIET) == send


@pytest.mark.parametrize(
    ("today", "kind", "due"),
    [
        (date(2026, 12, 10), "installment_due", True),
        (date(2026, 12, 7), "installment_due", True),
        (date(2026, 12, 6), "installment_due", False),
        (date(2026, 12, 11), "installment_due", False),
        (date(2026, 12, 10), "promise_due", True),
        (date(2026, 12, 9), "promise_due", False),
    ],
)
def test_installments_are_reminded_days_before_and_promises_on_the_day(
    today: date, kind: str, due: bool
) -> None:
    assert due_for_reminder(today, date(2026, 12, 10), kind, 3) is due  # type: ignore[arg-type]


def test_the_weekly_cap_counts_any_seven_days() -> None:
    at = beijing(10, 10)
    assert under_weekly_cap([], at, 2)
    assert under_weekly_cap([at - timedelta(days=1)], at, 2)
    assert not under_weekly_cap([at - timedelta(days=1), at - timedelta(days=6)], at, 2)
    assert under_weekly_cap([at - timedelta(days=1), at - timedelta(days=7)], at, 2)
    assert not under_weekly_cap([at + timedelta(days=2), at - timedelta(days=2)], at, 2)
    assert not under_weekly_cap([], at, 0)


def test_nobody_is_reminded_with_an_open_case_or_soon_after_distress() -> None:
    now = beijing(10, 10)
    assert may_remind(Contactability(False, None), now, LIFECYCLE)
    assert not may_remind(Contactability(True, None), now, LIFECYCLE)
    assert not may_remind(Contactability(False, now - timedelta(days=29)), now, LIFECYCLE)
    assert may_remind(Contactability(False, now - timedelta(days=30)), now, LIFECYCLE)


def test_wechat_uses_the_customer_service_api_only_within_48_hours() -> None:
    now = beijing(10, 10)
    assert wechat_route(now - timedelta(hours=47, minutes=59), now) == "custom"
    assert wechat_route(now - timedelta(hours=48), now) == "template"
    assert wechat_route(None, now) == "template"
    assert wechat_route(now + timedelta(minutes=5), now) == "template"


def test_channels_by_conversation_id() -> None:
    assert [channel_of(c) for c in ("wechat:o1", "webchat:ab", "rest-42", "")] == [
        "wechat",
        "webchat",
        "rest",
        "rest",
    ]


def test_retries_back_off_doubling_up_to_the_cap_and_outside_quiet_hours() -> None:
    retry = LIFECYCLE.retry
    now = beijing(10, 10)
    waits = [next_attempt(n, now, retry, QUIET) for n in range(1, 6)]
    assert waits[:4] == [now + timedelta(minutes=m) for m in (10, 20, 40, 80)]
    assert waits[4] is None  # the fifth failure is the last
    assert next_attempt(1, beijing(10, 20, 55), retry, QUIET) == beijing(11, 8, 0)
    capped = retry.copy(update={"max_backoff_minutes": 30})
    assert next_attempt(4, now, capped, QUIET) == now + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"reminder_days_before": -1}, "lifecycle.reminder_days_before"),
        ({"reminder_days_before": "3"}, "lifecycle.reminder_days_before"),
        ({"reminders_per_week": 100}, "lifecycle.reminders_per_week"),
        ({"quiet_hours": {"starts": "21:00", "ends": "21:00"}}, "lifecycle.quiet_hours"),
        ({"quiet_hours": {"starts": "25:00", "ends": "08:00"}}, "lifecycle.quiet_hours.starts"),
        (
            {"retry": {"max_attempts": 0, "backoff_minutes": 10, "max_backoff_minutes": 60}},
            "lifecycle.retry.max_attempts",
        ),
        (
            {"retry": {"max_attempts": 3, "backoff_minutes": 60, "max_backoff_minutes": 10}},
            "lifecycle.retry",
        ),
        ({"distress_days": 1.5}, "lifecycle.distress_days"),
        ({"surprise": 1}, "lifecycle.surprise"),
    ],
)
def test_a_bad_reminder_setting_is_refused_with_its_name(change: dict, setting: str) -> None:
    data = copy.deepcopy(RAW)
    data["lifecycle"].update(change)
    with pytest.raises(PolicyError) as error:
        parse_policy(data, "policy.yml")
    assert f"  {setting}:" in str(error.value)


@pytest.mark.parametrize(
    ("today", "now", "send"),
    [
        (date(2026, 12, 10), beijing(10, 10), beijing(10, 10)),
        (date(2026, 12, 10), beijing(10, 6), beijing(10, 8)),
        # The sweep of the 11th run the evening before: the morning of the 11th.
        (date(2026, 12, 11), beijing(10, 20, 30), beijing(11, 8)),
        (date(2026, 12, 13), beijing(10, 10), beijing(13, 8)),
        # A day swept late: now, outside quiet hours.
        (date(2026, 12, 9), beijing(10, 22), beijing(11, 8)),
    ],
)
def test_a_reminder_for_a_day_never_goes_out_before_that_day(
    today: date, now: datetime, send: datetime
) -> None:
    assert send_time(today, now, QUIET) == send
