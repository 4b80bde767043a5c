"""Reminders before due dates and notices of ended plans, queued in an outbox.

`queue_reminders(database, today, now)` is called by the daily sweep after it
applied the day's payments; it finds by itself what to remind:

- unpaid installments of active agreements due within `reminder_days_before`
  days (`installment:<id>`), and parts of active promises due today
  (`promise:<id>`);
- agreements the sweep broke (`status = 'broken'`, `ended_on` this week):
  a "plan ended" notice (`plan_ended:<agreement id>`).

Each goes to the debtor's last verified conversation (its channel decides the
delivery), never to a debtor whose case a negotiator has open or who was in
distress lately, at most the weekly cap, and never inside quiet hours: one
queued then is `deferred` until the morning. The key makes queuing idempotent:
the same day swept twice, or on two replicas at once, queues each thing once.

`bot.rasa_ext.reminders` delivers the WeChat ones through the outbox functions
below (`claim_due`, `mark_sent`, `mark_failed`); web chat and REST ones are shown
in their conversation at the debtor's next visit (`pending_in_conversation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.policy import Lifecycle, current_policy
from bot.domain.reminders import (
    Contactability,
    ReminderKind,
    channel_of,
    earliest_send,
    in_quiet_hours,
    may_remind,
    next_attempt,
    reminder_window,
    send_time,
    under_weekly_cap,
)
from bot.store import audit
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import Agreement, AgreementInstallment, HandoffCase, VerificationAttempt
from bot.store.reminder_models import Reminder

#: How long a sender owns a claimed reminder before another may try it.
CLAIM_LEASE = timedelta(minutes=5)
#: Notices of plans broken up to this many days ago are still queued (a missed sweep).
NOTICE_DAYS = 6
MAX_ERROR_CHARS = 200
REMINDERS = Reminder.__table__
INSTALLMENTS = AgreementInstallment.__table__
AGREEMENTS = Agreement.__table__
CASES = HandoffCase.__table__


@dataclass(frozen=True)
class ReminderCounts:
    """What one call of `queue_reminders` did: `queued` new reminders, of which
    `deferred` wait past quiet hours (so `deferred <= queued`)."""

    queued: int = 0
    deferred: int = 0


@dataclass(frozen=True)
class Candidate:
    """Something that may deserve a reminder today."""

    key: str
    kind: ReminderKind
    debtor_id: int
    agreement_id: int
    conversation_id: str
    due_on: date
    amount: Decimal | None
    currency: str


@dataclass(frozen=True)
class OutboxItem:
    """A reminder to deliver, with what its text needs."""

    id: int
    kind: str
    debtor_id: int
    conversation_id: str
    channel: str
    due_on: date
    amount: Decimal | None
    currency: str
    reference: str
    attempts: int
    status: str


def _unpaid(installment: AgreementInstallment) -> Decimal:
    return installment.amount - (installment.paid_amount or Decimal(0))


async def _candidates(session: AsyncSession, today: date, days_before: int) -> list[Candidate]:
    rows = (
        await session.execute(
            sa.select(AgreementInstallment, Agreement)
            .join(Agreement, Agreement.id == AgreementInstallment.agreement_id)
            .where(
                Agreement.status == "active",
                INSTALLMENTS.c.status != "paid",
                AgreementInstallment.due_date >= today,
                AgreementInstallment.due_date <= today + timedelta(days=days_before),
            )
            .order_by(AgreementInstallment.due_date, AgreementInstallment.id)
        )
    ).all()
    found = []
    for installment, agreement in rows:
        kind: ReminderKind = (
            "promise_due" if agreement.plan == "promise_to_pay" else "installment_due"
        )
        first, last = reminder_window(installment.due_date, kind, days_before)
        if not first <= today <= last or _unpaid(installment) <= 0:
            continue
        prefix = "promise" if kind == "promise_due" else "installment"
        found.append(
            Candidate(
                key=f"{prefix}:{installment.id}",
                kind=kind,
                debtor_id=agreement.debtor_id,
                agreement_id=agreement.id,
                conversation_id=agreement.conversation_id,
                due_on=installment.due_date,
                amount=_unpaid(installment),
                currency=agreement.currency,
            )
        )
    broken = (
        (
            await session.execute(
                sa.select(Agreement)
                .where(
                    Agreement.status == "broken",
                    AGREEMENTS.c.ended_on <= today,
                    AGREEMENTS.c.ended_on >= today - timedelta(days=NOTICE_DAYS),
                )
                .order_by(Agreement.id)
            )
        )
        .scalars()
        .all()
    )
    notices = [
        Candidate(
            key=f"plan_ended:{agreement.id}",
            kind="plan_ended",
            debtor_id=agreement.debtor_id,
            agreement_id=agreement.id,
            conversation_id=agreement.conversation_id,
            due_on=agreement.ended_on,
            amount=None,
            currency=agreement.currency,
        )
        for agreement in broken
    ]
    # A notice that a plan ended comes before reminders of what is due.
    return notices + found


async def _conversations(session: AsyncSession, debtor_id: int) -> list[str]:
    """The debtor's verified conversations, the most recent first."""
    rows = await session.execute(
        sa.select(VerificationAttempt.conversation_id, sa.func.max(VerificationAttempt.created_at))
        .where(
            VerificationAttempt.debtor_id == debtor_id,
            VerificationAttempt.__table__.c.succeeded.is_(True),
        )
        .group_by(VerificationAttempt.conversation_id)
        .order_by(sa.func.max(VerificationAttempt.created_at).desc())
    )
    return [conversation for conversation, _ in rows.all()]


async def contactability(
    session: AsyncSession, debtor_id: int, conversations: Sequence[str]
) -> Contactability:
    """Whether a negotiator has the debtor's case open, and their last distress."""
    mine = sa.or_(
        HandoffCase.debtor_id == debtor_id,
        CASES.c.conversation_id.in_(list(conversations)),
    )
    open_cases = await session.scalar(
        sa.select(sa.func.count())
        .select_from(HandoffCase)
        .where(mine, HandoffCase.status != "closed")
    )
    last_distress = await session.scalar(
        sa.select(sa.func.max(HandoffCase.created_at)).where(mine, HandoffCase.reason == "distress")
    )
    return Contactability(open_case=bool(open_cases), last_distress=last_distress)


async def _scheduled(session: AsyncSession, debtor_id: int) -> list[datetime]:
    rows = await session.execute(
        sa.select(sa.func.coalesce(Reminder.sent_at, Reminder.send_after)).where(
            Reminder.debtor_id == debtor_id, REMINDERS.c.status != "failed"
        )
    )
    return [moment for (moment,) in rows.all()]


async def _lock_debtor(session: AsyncSession, debtor_id: int) -> None:
    """Queue one debtor's reminders at a time, so that the weekly cap holds across replicas."""
    if session.bind.dialect.name == "postgresql":
        key = advisory_lock_key(f"reminders:{debtor_id}")
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        await session.execute(sa.text("UPDATE reminders SET id = id WHERE 1 = 0"))


async def _queue_one(
    database: Database, candidate: Candidate, today: date, now: datetime, lifecycle: Lifecycle
) -> str | None:
    """Queue one candidate; its status (`queued`, `deferred`), or None if it is not."""
    async with database.session() as session:
        await _lock_debtor(session, candidate.debtor_id)
        exists = await session.scalar(sa.select(Reminder.id).where(Reminder.key == candidate.key))
        if exists is not None:
            return None
        conversations = await _conversations(session, candidate.debtor_id)
        if not may_remind(
            await contactability(session, candidate.debtor_id, conversations), now, lifecycle
        ):
            return None
        at = send_time(today, now, lifecycle.quiet_hours)
        scheduled = await _scheduled(session, candidate.debtor_id)
        if not under_weekly_cap(scheduled, at, lifecycle.reminders_per_week):
            return None
        target = conversations[0] if conversations else candidate.conversation_id
        status = "deferred" if at > now else "queued"
        session.add(
            Reminder(
                key=candidate.key,
                kind=candidate.kind,
                debtor_id=candidate.debtor_id,
                agreement_id=candidate.agreement_id,
                conversation_id=target,
                channel=channel_of(target),
                due_on=candidate.due_on,
                amount=candidate.amount,
                currency=candidate.currency,
                status=status,
                send_after=at,
                created_at=now,
            )
        )
        await audit.record(
            session,
            audit.BOT_ACTOR,
            "reminder_queued",
            target,
            candidate.debtor_id,
            {"key": candidate.key, "kind": candidate.kind, "status": status},
            at=now,
        )
        try:
            await session.commit()
        except IntegrityError:
            # Queued by another process at the same moment.
            await session.rollback()
            return None
    return status


async def queue_reminders(
    database: Database, today: date, now: datetime, *, lifecycle: Lifecycle | None = None
) -> ReminderCounts:
    """Queue the reminders and notices due on `today` (Beijing date) as of `now` (aware).

    `lifecycle` defaults to the policy of this process.
    """
    settings = lifecycle or current_policy().lifecycle
    async with database.session() as session:
        candidates = await _candidates(session, today, settings.reminder_days_before)
    queued = deferred = 0
    for candidate in candidates:
        status = await _queue_one(database, candidate, today, now, settings)
        if status is not None:
            queued += 1
            deferred += status == "deferred"
    return ReminderCounts(queued=queued, deferred=deferred)


# --- the outbox ----------------------------------------------------------------------------


def _item(reminder: Reminder, reference: str) -> OutboxItem:
    return OutboxItem(
        id=reminder.id,
        kind=reminder.kind,
        debtor_id=reminder.debtor_id,
        conversation_id=reminder.conversation_id,
        channel=reminder.channel,
        due_on=reminder.due_on,
        amount=reminder.amount,
        currency=reminder.currency,
        reference=reference,
        attempts=reminder.attempts,
        status=reminder.status,
    )


async def claim_due(
    database: Database, now: datetime, channels: Sequence[str] = ("wechat",), limit: int = 100
) -> list[OutboxItem]:
    """The reminders due by `now` on `channels`, each claimed for this sender.

    A claim moves `send_after` on by `CLAIM_LEASE` and counts the attempt in one
    conditional UPDATE, so two senders never take the same reminder; one whose
    sender died is taken again when the lease ends.
    """
    async with database.session() as session:
        rows = (
            await session.execute(
                sa.select(Reminder, Agreement.reference)
                .join(Agreement, Agreement.id == Reminder.agreement_id)
                .where(
                    REMINDERS.c.status.in_(("queued", "deferred")),
                    REMINDERS.c.channel.in_(list(channels)),
                    Reminder.send_after <= now,
                )
                .order_by(Reminder.send_after, Reminder.id)
                .limit(limit)
            )
        ).all()
    claimed = []
    for reminder, reference in rows:
        async with database.session() as session:
            result = await session.execute(
                sa.update(Reminder)
                .where(
                    Reminder.id == reminder.id,
                    Reminder.send_after == reminder.send_after,
                    REMINDERS.c.status.in_(("queued", "deferred")),
                )
                .values(send_after=now + CLAIM_LEASE, attempts=Reminder.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        if result.rowcount == 1:
            claimed.append(_item(reminder, reference))
    return claimed


async def still_wanted(
    database: Database, item: OutboxItem, now: datetime, lifecycle: Lifecycle
) -> str | None:
    """None if the reminder should still go out; else why not (an error code)."""
    async with database.session() as session:
        conversations = await _conversations(session, item.debtor_id)
        who = await contactability(session, item.debtor_id, conversations or [item.conversation_id])
        if not may_remind(who, now, lifecycle):
            return "contact_barred"
        if item.kind == "plan_ended":
            return None
        prefix, _, installment_id = (
            await session.scalar(sa.select(Reminder.key).where(Reminder.id == item.id)) or ""
        ).partition(":")
        installment = await session.get(AgreementInstallment, int(installment_id or 0))
        agreement = (
            None if installment is None else await session.get(Agreement, installment.agreement_id)
        )
        if installment is None or agreement is None or agreement.status != "active":
            return "no_longer_due"
        if installment.status == "paid" or _unpaid(installment) <= 0:
            return "no_longer_due"
    return None


async def mark_sent(database: Database, reminder_id: int, via: str, now: datetime) -> None:
    """The reminder was delivered (`via`: `custom`, `template` or `visit`)."""
    async with database.session() as session:
        reminder = await session.get(Reminder, reminder_id)
        if reminder is None:
            return
        reminder.status, reminder.via, reminder.sent_at = "sent", via, now
        reminder.last_error = None
        await audit.record(
            session,
            audit.BOT_ACTOR,
            "reminder_sent",
            reminder.conversation_id,
            reminder.debtor_id,
            {"key": reminder.key, "via": via},
            at=now,
        )
        await session.commit()


async def mark_failed(
    database: Database,
    reminder_id: int,
    error: str,
    now: datetime,
    lifecycle: Lifecycle,
    *,
    final: bool = False,
) -> str:
    """An attempt failed: try again after the backoff, or give up. Returns the new status."""
    async with database.session() as session:
        reminder = await session.get(Reminder, reminder_id)
        if reminder is None:
            return "failed"
        retry_at = (
            None
            if final
            else next_attempt(reminder.attempts, now, lifecycle.retry, lifecycle.quiet_hours)
        )
        reminder.last_error = error[:MAX_ERROR_CHARS]
        if retry_at is None:
            reminder.status = "failed"
            reminder.send_after = now
            await audit.record(
                session,
                audit.BOT_ACTOR,
                "reminder_failed",
                reminder.conversation_id,
                reminder.debtor_id,
                {"key": reminder.key, "error": reminder.last_error, "attempts": reminder.attempts},
                at=now,
            )
        else:
            reminder.status = "queued"
            reminder.send_after = retry_at
        status = reminder.status
        await session.commit()
    return status


async def defer(database: Database, reminder_id: int, now: datetime, lifecycle: Lifecycle) -> None:
    """Claimed inside quiet hours: wait for the morning (the claim is not an attempt)."""
    async with database.session() as session:
        reminder = await session.get(Reminder, reminder_id)
        if reminder is None:
            return
        reminder.status = "deferred"
        reminder.send_after = earliest_send(now, lifecycle.quiet_hours)
        reminder.attempts = max(reminder.attempts - 1, 0)
        await session.commit()


async def pending_in_conversation(
    database: Database, conversation_id: str, now: datetime, lifecycle: Lifecycle
) -> list[OutboxItem]:
    """The web chat or REST reminders of a conversation to show at this visit.

    None inside quiet hours, and none that is no longer wanted (paid since,
    a case opened); those are closed as failed with the reason.
    """
    if in_quiet_hours(now, lifecycle.quiet_hours):
        return []
    async with database.session() as session:
        rows = (
            await session.execute(
                sa.select(Reminder, Agreement.reference)
                .join(Agreement, Agreement.id == Reminder.agreement_id)
                .where(
                    Reminder.conversation_id == conversation_id,
                    REMINDERS.c.channel.in_(("webchat", "rest")),
                    REMINDERS.c.status.in_(("queued", "deferred")),
                    Reminder.send_after <= now,
                )
                .order_by(Reminder.send_after, Reminder.id)
            )
        ).all()
    shown = []
    for reminder, reference in rows:
        item = _item(reminder, reference)
        reason = await still_wanted(database, item, now, lifecycle)
        if reason is not None:
            await mark_failed(database, item.id, reason, now, lifecycle, final=True)
            continue
        shown.append(item)
    return shown
