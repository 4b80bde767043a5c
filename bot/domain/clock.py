"""The bank's time: its day starts and ends in Beijing, wherever a server runs."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

#: 周一 … 周日 by `isoweekday()` (index 0 unused).
WEEKDAY_NAMES = ("", "周一", "周二", "周三", "周四", "周五", "周六", "周日")


def beijing_today(now: datetime | None = None) -> date:
    """Today's date in Beijing (`now` an aware datetime, default the current time)."""
    return (now or datetime.now(BEIJING)).astimezone(BEIJING).date()


def weekday_name(day: date) -> str:
    """ "周一" … "周日"."""
    return WEEKDAY_NAMES[day.isoweekday()]
