"""Dates relative to the debtor's day: "下周五", "下个月10号", "12月20日", "月底", "明天"."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from bot.rasa_ext.nlu.quantity_numbers import NUMERAL_CHARS, parse_number

#: The day of the week after 周/星期/礼拜, as `date.weekday()` (Monday 0).
WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
WEEKDAYS.update({str(i + 1): i for i in range(7)})


def _add_months(day: date, months: int) -> tuple[int, int]:
    total = day.year * 12 + day.month - 1 + months
    return total // 12, total % 12 + 1


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    number = parse_number(text)
    if number is None or number != int(number):
        return None
    return int(number)


def parse_date(text: str, today: date) -> date | None:
    """Resolve a date expression relative to `today` (the debtor's local date).

    A day without a month ("15号") is the next such day from today; a month and
    day without a year ("12月20日") is the next such date; "月底" is the last day
    of this month; "下周五" is Friday of next week; "周五" the coming Friday.
    """
    compact = text.replace(" ", "")
    relative = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3}
    if compact in relative:
        return today + timedelta(days=relative[compact])
    next_month = compact.startswith(("下个月", "下月"))
    offset = 2 if compact.startswith("下下个月") else 1 if next_month else 0
    year, month = _add_months(today, offset)

    if re.search("(月底|月末|底|末)$", compact) and not re.search("(周|星期|礼拜)", compact):
        if compact in {"年底", "年末"}:
            return date(today.year, 12, 31)
        return _month_end(year, month)
    if re.search("(月初|初)$", compact):
        year, month = _add_months(today, max(offset, 1))
        return date(year, month, 1)

    week = re.fullmatch("(下个?|这个?|本)?(周|星期|礼拜)(.)", compact)
    if week or compact in {"周末", "下周末", "这周末"}:
        if week:
            prefix, day_char = week.group(1) or "", week.group(3)
        else:
            prefix, day_char = compact[:-2], "末"
        if day_char not in WEEKDAYS:
            return None
        monday = today - timedelta(days=today.weekday())
        target = monday + timedelta(days=WEEKDAYS[day_char])
        if prefix.startswith("下") or (not prefix and target < today):
            target += timedelta(days=7)
        return target

    full = re.fullmatch(
        f"([{NUMERAL_CHARS}]+)(?:年|-)([{NUMERAL_CHARS}]+)(?:月|-)([{NUMERAL_CHARS}]+)[日号]?",
        compact,
    )
    if full:
        y, m, d = (_int(g) for g in full.groups())
        if y is None or m is None or d is None:
            return None
        if y < 100:
            y += 2000
        return _safe_date(y, m, d)

    month_day = re.fullmatch(f"([{NUMERAL_CHARS}]+)月([{NUMERAL_CHARS}]+)[日号]", compact)
    if month_day:
        m, d = (_int(g) for g in month_day.groups())
        if m is None or d is None:
            return None
        candidate = _safe_date(today.year, m, d)
        if candidate is not None and candidate < today:
            candidate = _safe_date(today.year + 1, m, d)
        return candidate

    day_only = re.fullmatch(
        f"(?:下下个月|下个月|下月|这个月|本月|当月)?([{NUMERAL_CHARS}]+)[日号]", compact
    )
    if day_only:
        d = _int(day_only.group(1))
        if d is None or not 1 <= d <= 31:
            return None
        candidate = _safe_date(year, month, d)
        if offset == 0 and (candidate is None or candidate < today):
            year, month = _add_months(today, 1)
            candidate = _safe_date(year, month, d)
        return candidate
    return None
