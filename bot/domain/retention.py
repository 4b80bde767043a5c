"""How long a conversation and its audit trail are kept, and since when they are not (PIPL Art. 19).

A conversation is kept while anything it started is open: a handoff case, a
dispute, an agreement or a promise still running, a referral the collections
department has not taken over. Once nothing is open it is kept `days` more
days (the policy file's `retention` section) after the later of its last
activity and the end of its last item. Days are Beijing calendar days: activity
at 23:30 Beijing time counts for that day, whatever the server's zone. The
last activity's day plus `days` is the last day kept (`kept_until`); the day
after it the conversation is past retention (`since`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from bot.domain.clock import BEIJING

#: Kinds of item, as the purge's summary names them.
CASE, DISPUTE, AGREEMENT, PROMISE, REFERRAL = "case", "dispute", "agreement", "promise", "referral"


@dataclass(frozen=True)
class Item:
    """Something a conversation started that holds its records while it is open.

    `ended` is when it ended (a time, or a Beijing date such as a last due
    date); None while it is open.
    """

    kind: str
    ended: datetime | date | None

    @property
    def is_open(self) -> bool:
        return self.ended is None


@dataclass(frozen=True)
class Verdict:
    """Whether a conversation (or its audit trail) is past retention, and since when."""

    past: bool
    #: The kinds of item still open (sorted); empty once nothing is.
    open: tuple[str, ...]
    #: The last Beijing day it is kept; None while something is open.
    kept_until: date | None
    #: The first Beijing day it is past retention (`kept_until` + 1); None while open.
    since: date | None


def beijing_day(moment: datetime | date) -> date:
    """The Beijing calendar day of `moment`; a date is taken as already one."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware one")
    return moment.astimezone(BEIJING).date()


def case_item(
    *, status: str, reason: str, holds_collection: bool, outcome: str | None, ended: datetime
) -> Item:
    """A handoff case: open until staff close it.

    A dispute (reason `dispute`, or a case that put accounts on hold) closed as
    `dispute_logged` stays open: staff are still investigating it and the
    account stays on hold. `ended` is when the case was closed.
    """
    dispute = reason == "dispute" or holds_collection
    kind = DISPUTE if dispute else CASE
    if status != "closed" or (dispute and outcome == "dispute_logged"):
        return Item(kind, None)
    return Item(kind, ended)


def agreement_item(*, plan: str, status: str, last_due: date) -> Item:
    """An agreement or a promise to pay: open while `active` (not completed, broken or kept).

    One that is no longer active ends on its last due date at the earliest:
    a promise is never over before it is due, and a plan's record of the
    conversation is kept until its schedule has run out.
    """
    kind = PROMISE if plan == "promise_to_pay" else AGREEMENT
    return Item(kind, None if status == "active" else last_due)


def referral_item(*, status: str, ended: datetime) -> Item:
    """A referral to collections: open until the department acknowledges it (at `ended`)."""
    return Item(REFERRAL, None if status == "queued" else ended)


def verdict(
    last_activity: datetime | date, items: Iterable[Item], today: date, days: int
) -> Verdict:
    """Whether a conversation whose last activity was `last_activity` is past `days` of retention.

    Nothing is past while an item is open. Otherwise the clock starts on the
    later of the last activity's Beijing day and the day its last item ended.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    items = list(items)
    still_open = tuple(sorted({item.kind for item in items if item.is_open}))
    if still_open:
        return Verdict(False, still_open, None, None)
    start = max([beijing_day(last_activity)] + [beijing_day(i.ended) for i in items if i.ended])
    kept_until = start + timedelta(days=days)
    since = kept_until + timedelta(days=1)
    return Verdict(today >= since, (), kept_until, since)


def cutoff(today: date, days: int) -> date:
    """The latest Beijing day a retention may have started on to be past it by `today`."""
    return today - timedelta(days=days + 1)


def cutoff_instant(today: date, days: int) -> datetime:
    """The moment (UTC) from which activity keeps a conversation on `today`.

    Anything past retention had all its activity before it; a search for what
    may be past can leave out whatever has activity at or after it.
    """
    day = cutoff(today, days) + timedelta(days=1)
    return datetime.combine(day, time(0), BEIJING).astimezone(timezone.utc)
