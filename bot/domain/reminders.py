"""When a debtor may be reminded, and how: pure rules over plain data.

- An installment is reminded from `reminder_days_before` days before its due
  date until the day itself, while it is unpaid; a promise on its day.
- Nothing goes out inside quiet hours (Beijing time): a reminder due then waits
  until they end.
- At most `reminders_per_week` per debtor in any seven days.
- Nobody is reminded whose case a negotiator has open, nor within
  `distress_days` of a message of distress.
- On WeChat the customer-service API may be used only within 48 hours of the
  user's last message; otherwise the template (subscription) message API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from bot.domain.clock import BEIJING
from bot.domain.policy import Lifecycle, QuietHours, ReminderRetry

#: What a reminder is about.
ReminderKind = Literal["installment_due", "promise_due", "plan_ended"]
REMINDER_KINDS: tuple[ReminderKind, ...] = ("installment_due", "promise_due", "plan_ended")
#: Where it goes: a WeChat user, or a conversation that shows it at the next visit.
ReminderChannel = Literal["wechat", "webchat", "rest"]
#: How a WeChat reminder went out.
WeChatRoute = Literal["custom", "template"]
#: WeChat lets an account answer through the customer-service API this long after
#: the user's last message (the "48-hour window").
CUSTOMER_SERVICE_WINDOW = timedelta(hours=48)
WEEK = timedelta(days=7)


def in_quiet_hours(now: datetime, quiet: QuietHours) -> bool:
    """Whether `now` (aware) falls in the quiet hours, in Beijing time."""
    local = now.astimezone(BEIJING).time()
    if quiet.starts < quiet.ends:
        return quiet.starts <= local < quiet.ends
    return local >= quiet.starts or local < quiet.ends


def earliest_send(now: datetime, quiet: QuietHours) -> datetime:
    """`now` outside quiet hours; inside them, when they end (aware, Beijing time)."""
    if not in_quiet_hours(now, quiet):
        return now
    local = now.astimezone(BEIJING)
    end = datetime.combine(local.date(), quiet.ends, tzinfo=BEIJING)
    if end <= local:
        end += timedelta(days=1)
    return end


def reminder_window(due: date, kind: ReminderKind, days_before: int) -> tuple[date, date]:
    """The first and last day a reminder about something due on `due` may be queued."""
    if kind == "installment_due":
        return due - timedelta(days=days_before), due
    return due, due


def due_for_reminder(today: date, due: date, kind: ReminderKind, days_before: int) -> bool:
    """Whether `today` is within the reminder window of a payment due on `due`."""
    first, last = reminder_window(due, kind, days_before)
    return first <= today <= last


def under_weekly_cap(scheduled: Iterable[datetime], at: datetime, cap: int) -> bool:
    """Whether one more reminder at `at` keeps every seven days at most `cap`.

    `scheduled` are the send times of the debtor's reminders already queued or sent
    (failed ones excluded: they reached nobody).
    """
    nearby = [moment for moment in scheduled if abs(moment - at) < WEEK]
    return len(nearby) < cap


@dataclass(frozen=True)
class Contactability:
    """What the store knows about a debtor that decides whether they may be contacted."""

    open_case: bool
    last_distress: datetime | None


def may_remind(who: Contactability, now: datetime, lifecycle: Lifecycle) -> bool:
    """No reminder while a negotiator has the case, nor soon after distress."""
    if who.open_case:
        return False
    if who.last_distress is not None:
        return now - who.last_distress >= timedelta(days=lifecycle.distress_days)
    return True


def wechat_route(last_message: datetime | None, now: datetime) -> WeChatRoute:
    """The customer-service API within 48 hours of the user's last message, else a template."""
    if last_message is not None and timedelta(0) <= now - last_message < CUSTOMER_SERVICE_WINDOW:
        return "custom"
    return "template"


def channel_of(conversation_id: str) -> ReminderChannel:
    """The channel a conversation id belongs to (`wechat:…`, `webchat:…`, else REST)."""
    if conversation_id.startswith("wechat:"):
        return "wechat"
    if conversation_id.startswith("webchat:"):
        return "webchat"
    return "rest"


def next_attempt(
    attempts: int, now: datetime, retry: ReminderRetry, quiet: QuietHours
) -> datetime | None:
    """When to try again after `attempts` failed ones, or None to give up.

    The wait doubles after each failure, up to `max_backoff_minutes`, and never
    ends inside quiet hours.
    """
    if attempts >= retry.max_attempts:
        return None
    minutes = min(retry.backoff_minutes * 2 ** max(attempts - 1, 0), retry.max_backoff_minutes)
    return earliest_send(now + timedelta(minutes=minutes), quiet)


def send_time(today: date, now: datetime, quiet: QuietHours) -> datetime:
    """When a reminder queued for the (Beijing) day `today` as of `now` may go out.

    Never inside quiet hours, and never before `today` begins: the sweep of a
    day run the evening before (or for a later day) schedules for that day.
    """
    start = earliest_send(datetime.combine(today, time(0), tzinfo=BEIJING), quiet)
    return max(earliest_send(now, quiet), start)
