"""WeChat reminders delivered through the fake WeChat server, on SQLite and PostgreSQL.

Which API WeChat's rules allow (customer-service within 48 hours of the user's
last message, else a template message), retries with backoff, refusals, quiet
hours and a case opened after the reminder was queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.domain.clock import BEIJING
from bot.domain.conduct import conduct_problems
from bot.domain.policy import current_policy
from bot.rasa_ext.channels.wechat_api import WeChatApi
from bot.rasa_ext.channels.wechat_config import WeChatConfig, last_message_key, script_key
from bot.rasa_ext.channels.wechat_store import MemoryStore
from bot.rasa_ext.reminders import DeliveryCounts, load_texts, send_command, send_due
from bot.store.engine import Database
from bot.store.reminder_models import Reminder
from bot.store.reminders import queue_reminders
from tests.support.agreements import add_agreement, add_case, add_verification, demo_account
from tests.support.wechat_fake import APP_ID, APP_SECRET, TEMPLATE_ID, FakeWeChatApi

TODAY = date(2026, 12, 10)
MORNING = datetime(2026, 12, 10, 10, 0, tzinfo=BEIJING)
LIFECYCLE = current_policy().lifecycle
OPENID = "o-zhang-reminders"
TEXTS = load_texts("domain.yml")


@dataclass
class Stack:
    db: Database
    fake: FakeWeChatApi
    api: WeChatApi
    store: MemoryStore
    config: WeChatConfig

    async def send(self, now: datetime = MORNING) -> DeliveryCounts:
        return await send_due(self.db, self.api, self.store, self.config, TEXTS, now, LIFECYCLE)

    async def wrote(self, at: datetime) -> None:
        await self.store.set(last_message_key(APP_ID, OPENID), str(at.timestamp()), 48 * 3600)

    async def outbox(self) -> list[Reminder]:
        async with self.db.session() as session:
            return list((await session.execute(sa.select(Reminder))).scalars())


@pytest.fixture
async def stack(db: Database) -> AsyncIterator[Stack]:
    fake = FakeWeChatApi()
    base = await fake.start()
    store = MemoryStore()
    api = WeChatApi(APP_ID, APP_SECRET, base, store=store)
    config = WeChatConfig(app_id=APP_ID, app_secret=APP_SECRET, reminder_template_id=TEMPLATE_ID)
    debtor, account = await demo_account(db, "13800138000")
    await add_verification(db, debtor, f"wechat:{OPENID}")
    await add_agreement(db, debtor, account, [(TODAY + timedelta(days=3), "1250.00")])
    assert (await queue_reminders(db, TODAY, MORNING)).queued == 1
    yield Stack(db, fake, api, store, config)
    await api.close()
    await fake.stop()


async def test_within_48_hours_of_the_last_message_the_customer_service_api(stack: Stack) -> None:
    await stack.wrote(MORNING - timedelta(hours=47))
    assert await stack.send() == DeliveryCounts(sent_custom=1)
    (text,) = stack.fake.sent_to(OPENID)
    assert "1,250.00 元" in text and "2026-12-13（周日）" in text
    assert conduct_problems(text) == []
    assert stack.fake.templates == {}
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.via, reminder.attempts) == ("sent", "custom", 1)
    assert await stack.send(MORNING + timedelta(hours=1)) == DeliveryCounts()


async def test_a_debtor_who_reads_traditional_is_reminded_in_traditional(stack: Stack) -> None:
    await stack.wrote(MORNING - timedelta(hours=2))
    await stack.store.set(script_key(APP_ID, OPENID), "zh-Hant-TW", 3600)
    assert await stack.send() == DeliveryCounts(sent_custom=1)
    (text,) = stack.fake.sent_to(OPENID)
    assert "溫馨提醒" in text and "還款" in text and "温馨提醒" not in text
    assert "1,250.00" in text and "2026-12-13" in text
    assert conduct_problems(text) == []


async def test_after_48_hours_a_template_message(stack: Stack) -> None:
    await stack.wrote(MORNING - timedelta(hours=49))
    assert await stack.send() == DeliveryCounts(sent_template=1)
    assert stack.fake.messages == {}
    (message,) = stack.fake.templates[OPENID]
    assert message.template_id == TEMPLATE_ID
    assert message.data["keyword1"] == "2026-12-13（周日）"
    assert message.data["keyword2"] == "1,250.00 CNY"
    assert "温馨提醒" in message.data["first"]
    assert conduct_problems(message.data["first"]) == []


async def test_a_customer_service_message_refused_as_too_late_goes_as_a_template(
    stack: Stack,
) -> None:
    await stack.wrote(MORNING - timedelta(hours=1))
    stack.fake.window_closed.add(OPENID)
    assert await stack.send() == DeliveryCounts(sent_template=1)
    (reminder,) = await stack.outbox()
    assert reminder.via == "template"


async def test_a_busy_wechat_is_tried_again_after_the_backoff(stack: Stack) -> None:
    stack.fake.busy = 1
    assert await stack.send() == DeliveryCounts(retrying=1)
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.last_error) == ("queued", "errcode -1")
    assert reminder.send_after == MORNING + timedelta(minutes=10)
    assert await stack.send(MORNING + timedelta(minutes=9)) == DeliveryCounts()
    assert await stack.send(MORNING + timedelta(minutes=10)) == DeliveryCounts(sent_template=1)
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.attempts, reminder.last_error) == ("sent", 2, None)


async def test_an_unsubscribed_user_fails_at_once(stack: Stack) -> None:
    stack.fake.unsubscribed.add(OPENID)
    assert await stack.send() == DeliveryCounts(failed=1)
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.last_error) == ("failed", "errcode 43004")
    assert await stack.send(MORNING + timedelta(days=1)) == DeliveryCounts()


async def test_without_a_template_outside_the_window_it_fails(stack: Stack) -> None:
    stack.config = WeChatConfig(app_id=APP_ID, app_secret=APP_SECRET)
    assert await stack.send() == DeliveryCounts(failed=1)
    assert stack.fake.all_sent() == [] and stack.fake.templates == {}


async def test_nothing_goes_out_in_quiet_hours(stack: Stack) -> None:
    night = datetime(2026, 12, 10, 21, 30, tzinfo=BEIJING)
    assert await stack.send(night) == DeliveryCounts()
    assert stack.fake.templates == {}
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.attempts) == ("queued", 0)


async def test_a_case_opened_after_queuing_stops_the_reminder(stack: Stack) -> None:
    debtor, _ = await demo_account(stack.db, "13800138000")
    await add_case(stack.db, debtor, f"wechat:{OPENID}", reason="distress")
    assert await stack.send() == DeliveryCounts(dropped=1)
    assert stack.fake.templates == {} and stack.fake.messages == {}
    (reminder,) = await stack.outbox()
    assert (reminder.status, reminder.last_error) == ("failed", "contact_barred")


async def test_the_send_command_reads_its_settings_from_the_environment(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", stack.db.url)
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("WECHAT_API_BASE", stack.fake.base_url)
    monkeypatch.setenv("WECHAT_REMINDER_TEMPLATE_ID", TEMPLATE_ID)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/8")
    assert await send_command(MORNING) == {
        "at": MORNING.isoformat(),
        "sent_custom": 0,
        "sent_template": 1,
        "retrying": 0,
        "failed": 0,
        "dropped": 0,
        "deferred": 0,
    }
    assert len(stack.fake.templates[OPENID]) == 1
    monkeypatch.delenv("WECHAT_APP_ID")
    assert (await send_command(MORNING))["skipped"]
