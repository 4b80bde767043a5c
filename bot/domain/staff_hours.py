"""When the human negotiators are at work, by the policy's staff hours (Beijing time)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.clock import BEIJING
from bot.domain.policy import StaffHours


def next_staff_opening(now: datetime, hours: StaffHours) -> datetime | None:
    """None while negotiators are at work; else when they next start, in Beijing time."""
    local = now.astimezone(BEIJING)
    if local.isoweekday() in hours.weekdays and hours.opens <= local.time() < hours.closes:
        return None
    day = local.date()
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.isoweekday() not in hours.weekdays:
            continue
        opening = datetime.combine(candidate_day, hours.opens, tzinfo=BEIJING)
        if opening > local:
            return opening
    raise ValueError("staff hours name no working day")  # the policy validator prevents it
