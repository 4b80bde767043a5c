"""The reminders outbox on SQLite and PostgreSQL: what is queued, when, to whom, and retries."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.domain.clock import BEIJING
from bot.domain.policy import current_policy
from bot.store.engine import Database
from bot.store.reminder_models import Reminder
from bot.store.reminders import (
    ReminderCounts,
    claim_due,
    mark_failed,
    mark_sent,
    pending_in_conversation,
    queue_reminders,
)
from tests.support.agreements import add_agreement, add_case, add_verification, demo_account

TODAY = date(2026, 12, 10)
MORNING = datetime(2026, 12, 10, 10, 0, tzinfo=BEIJING)
NIGHT = datetime(2026, 12, 10, 22, 30, tzinfo=BEIJING)
LIFECYCLE = current_policy().lifecycle
ZHANG = "13800138000"
LI = "13900139001"


async def reminders(db: Database) -> list[Reminder]:
    async with db.session() as session:
        return list((await session.execute(sa.select(Reminder).order_by(Reminder.id))).scalars())


async def installment_in(db: Database, mobile: str, days: int, conversation: str) -> int:
    debtor, account = await demo_account(db, mobile)
    await add_verification(db, debtor, conversation)
    due = TODAY + timedelta(days=days)
    return await add_agreement(
        db, debtor, account, [(due, "500.00"), (due + timedelta(days=30), "500.00")]
    )


async def test_an_installment_due_in_three_days_is_queued_once_for_the_last_channel(
    db: Database,
) -> None:
    debtor, account = await demo_account(db, ZHANG)
    await add_verification(db, debtor, "rest:old", datetime(2026, 12, 1, tzinfo=timezone.utc))
    await add_verification(db, debtor, "wechat:o-zhang", datetime(2026, 12, 5, tzinfo=timezone.utc))
    await add_agreement(
        db,
        debtor,
        account,
        [(date(2026, 12, 13), "800.00"), (date(2027, 1, 13), "800.00")],
        paid=["300.00"],
    )

    assert await queue_reminders(db, TODAY, MORNING) == ReminderCounts(queued=1, deferred=0)
    assert await queue_reminders(db, TODAY, MORNING) == ReminderCounts(queued=0, deferred=0)

    (reminder,) = await reminders(db)
    assert (reminder.kind, reminder.channel, reminder.conversation_id) == (
        "installment_due",
        "wechat",
        "wechat:o-zhang",
    )
    assert (reminder.status, str(reminder.amount), reminder.due_on) == (
        "queued",
        "500.00",
        date(2026, 12, 13),
    )
    assert reminder.send_after == MORNING


async def test_nothing_is_queued_before_the_window_or_for_a_paid_installment(db: Database) -> None:
    await installment_in(db, ZHANG, 4, "wechat:o-zhang")
    debtor, account = await demo_account(db, LI)
    await add_verification(db, debtor, "wechat:o-li")
    await add_agreement(
        db, debtor, account, [(TODAY + timedelta(days=1), "100.00")], paid=["100.00"]
    )
    assert await queue_reminders(db, TODAY, MORNING) == ReminderCounts(0, 0)


async def test_a_reminder_queued_in_quiet_hours_waits_for_the_morning(db: Database) -> None:
    await installment_in(db, ZHANG, 1, "webchat:abc")
    assert await queue_reminders(db, TODAY, NIGHT) == ReminderCounts(queued=1, deferred=1)
    (reminder,) = await reminders(db)
    assert reminder.status == "deferred"
    assert reminder.send_after == datetime(2026, 12, 11, 8, 0, tzinfo=BEIJING)
    assert reminder.channel == "webchat"


async def test_a_promise_is_reminded_on_its_day_only(db: Database) -> None:
    debtor, account = await demo_account(db, ZHANG)
    await add_verification(db, debtor, "rest:zhang")
    await add_agreement(
        db, debtor, account, [(TODAY + timedelta(days=1), "2000.00")], plan="promise_to_pay"
    )
    assert await queue_reminders(db, TODAY, MORNING) == ReminderCounts(0, 0)
    assert await queue_reminders(db, TODAY + timedelta(days=1), MORNING + timedelta(days=1)) == (
        ReminderCounts(1, 0)
    )
    (reminder,) = await reminders(db)
    assert (reminder.kind, reminder.channel) == ("promise_due", "rest")


async def test_a_broken_plan_gets_a_notice_first_and_the_weekly_cap_holds(db: Database) -> None:
    debtor, account = await demo_account(db, ZHANG)
    await add_verification(db, debtor, "wechat:o-zhang")
    await add_agreement(
        db,
        debtor,
        account,
        [(TODAY - timedelta(days=10), "100.00")],
        status="broken",
        ended_on=TODAY,
    )
    await add_agreement(db, debtor, account, [(TODAY + timedelta(days=2), "100.00")])
    capped = LIFECYCLE.copy(update={"reminders_per_week": 1})
    assert await queue_reminders(db, TODAY, MORNING, lifecycle=capped) == ReminderCounts(1, 0)
    assert [r.kind for r in await reminders(db)] == ["plan_ended"]
    # Later in the week the cap still holds; a week after the notice it does not.
    assert await queue_reminders(
        db, TODAY + timedelta(days=1), MORNING + timedelta(days=1), lifecycle=capped
    ) == (ReminderCounts(0, 0))
    assert await queue_reminders(db, TODAY, MORNING) == ReminderCounts(1, 0)
    assert [r.kind for r in await reminders(db)] == ["plan_ended", "installment_due"]


@pytest.mark.parametrize(
    ("reason", "status", "days_ago", "queued"),
    [
        ("request_human", "waiting", 0, 0),
        ("request_human", "claimed", 0, 0),
        ("request_human", "closed", 1, 1),
        ("distress", "closed", 10, 0),
        ("distress", "closed", 40, 1),
    ],
)
async def test_no_reminder_while_a_case_is_open_or_soon_after_distress(
    db: Database, reason: str, status: str, days_ago: int, queued: int
) -> None:
    await installment_in(db, ZHANG, 2, "wechat:o-zhang")
    debtor, _ = await demo_account(db, ZHANG)
    await add_case(
        db,
        debtor,
        "wechat:o-zhang",
        reason=reason,
        status=status,
        created_at=MORNING - timedelta(days=days_ago),
    )
    assert (await queue_reminders(db, TODAY, MORNING)).queued == queued


async def test_two_sweeps_at_once_queue_each_reminder_once(db: Database) -> None:
    await installment_in(db, ZHANG, 2, "wechat:o-zhang")
    await installment_in(db, LI, 3, "webchat:li")
    results = await asyncio.gather(*(queue_reminders(db, TODAY, MORNING) for _ in range(4)))
    assert sum(r.queued for r in results) == 2
    assert len(await reminders(db)) == 2


async def test_one_active_agreement_per_account(db: Database) -> None:
    debtor, account = await demo_account(db, ZHANG)
    await add_agreement(db, debtor, account, [(TODAY, "100.00")], status="broken", ended_on=TODAY)
    await add_agreement(db, debtor, account, [(TODAY, "100.00")])
    with pytest.raises(IntegrityError):
        await add_agreement(db, debtor, account, [(TODAY, "100.00")], plan="promise_to_pay")


async def test_a_claim_is_taken_once_and_a_failure_is_retried_with_backoff(db: Database) -> None:
    await installment_in(db, ZHANG, 2, "wechat:o-zhang")
    await queue_reminders(db, TODAY, MORNING)
    claims = await asyncio.gather(*(claim_due(db, MORNING) for _ in range(3)))
    assert sorted(len(c) for c in claims) == [0, 0, 1]
    (item,) = [c for c in claims if c][0]
    assert await claim_due(db, MORNING + timedelta(minutes=1)) == []

    assert await mark_failed(db, item.id, "errcode -1", MORNING, LIFECYCLE) == "queued"
    (reminder,) = await reminders(db)
    assert reminder.send_after == MORNING + timedelta(minutes=10)
    assert (reminder.attempts, reminder.last_error) == (1, "errcode -1")
    # Second failure: twice the wait.
    (again,) = await claim_due(db, MORNING + timedelta(minutes=10))
    await mark_failed(db, again.id, "errcode -1", MORNING + timedelta(minutes=10), LIFECYCLE)
    (reminder,) = await reminders(db)
    assert reminder.send_after == MORNING + timedelta(minutes=30)

    await mark_sent(db, again.id, "template", MORNING + timedelta(minutes=30))
    (reminder,) = await reminders(db)
    assert (reminder.status, reminder.via, reminder.last_error) == ("sent", "template", None)


async def test_after_the_last_attempt_the_reminder_fails(db: Database) -> None:
    await installment_in(db, ZHANG, 2, "wechat:o-zhang")
    await queue_reminders(db, TODAY, MORNING)
    once = LIFECYCLE.copy(update={"retry": LIFECYCLE.retry.copy(update={"max_attempts": 1})})
    (item,) = await claim_due(db, MORNING)
    assert await mark_failed(db, item.id, "errcode 43004", MORNING, once) == "failed"
    assert await claim_due(db, MORNING + timedelta(days=1)) == []


async def test_web_chat_reminders_wait_for_the_visit_outside_quiet_hours(db: Database) -> None:
    await installment_in(db, ZHANG, 1, "webchat:abc")
    await queue_reminders(db, TODAY, NIGHT)
    assert await claim_due(db, NIGHT + timedelta(days=1)) == []  # not the sender's
    assert await pending_in_conversation(db, "webchat:abc", NIGHT, LIFECYCLE) == []
    morning = datetime(2026, 12, 11, 9, 0, tzinfo=BEIJING)
    (item,) = await pending_in_conversation(db, "webchat:abc", morning, LIFECYCLE)
    assert (item.kind, str(item.amount), item.due_on) == (
        "installment_due",
        "500.00",
        date(2026, 12, 11),
    )
    assert await pending_in_conversation(db, "webchat:other", morning, LIFECYCLE) == []


async def test_a_day_swept_the_evening_before_is_reminded_that_morning(db: Database) -> None:
    await installment_in(db, ZHANG, 2, "wechat:o-zhang")
    evening_before = datetime(2026, 12, 9, 20, 0, tzinfo=BEIJING)
    assert await queue_reminders(db, TODAY, evening_before) == ReminderCounts(1, 1)
    (reminder,) = await reminders(db)
    assert reminder.send_after == datetime(2026, 12, 10, 8, 0, tzinfo=BEIJING)
    assert await claim_due(db, evening_before + timedelta(hours=1)) == []
