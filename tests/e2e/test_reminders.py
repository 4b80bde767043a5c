"""After the agreement, against a running stack: what the debtor is told about their plan,
no second plan, a negotiator to change it, reminders shown at the next visit or sent on
WeChat (customer-service API within 48 hours, else a template message), and the notice
of a broken plan in the debtor's next conversation.

The stack is this module's own: its policy's quiet hours are moved away from the time
the tests run, so that they pass at any hour, and the weekly cap and the days after
distress do not count what earlier tests of the session did with the same demo debtor
(all three are tested in `tests/integration/test_reminders.py` and
`tests/unit/test_reminder_rules.py`). Its WeChat channel talks to a fake WeChat server
of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml

from bot.domain.clock import BEIJING, beijing_today
from bot.domain.policy import DEFAULT_POLICY_PATH, load_policy
from bot.rasa_ext.channels.wechat_config import last_message_key
from bot.store.engine import Database
from bot.store.reminders import queue_reminders
from bot.tools.stack import ROOT, Stack, StackConfig
from tests.support.agreements import add_agreement, demo_account
from tests.support.conversations import CONVERSATIONS_DIR, play, reply_text
from tests.support.ports import e2e_port
from tests.support.rasa_api import API_TOKEN, RestClient
from tests.support.records import execute, free_to_remind, handoff_cases, query
from tests.support.wechat_fake import (
    APP_ID,
    TEMPLATE_ID,
    FakeInThread,
    FakeWeChatApi,
    WeChatClient,
    http_transport,
    new_openid,
    text_message,
)
from tests.support.wechat_fake import stack_env as wechat_stack_env

pytestmark = pytest.mark.e2e

INSTALLMENT = CONVERSATIONS_DIR / "negotiation" / "zhang_wei_installment.yml"
IDENTITY = "我是张伟 身份证尾号1234 手机13800138000"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _policy_for_these_tests(path: Path) -> Path:
    """The bundled policy; quiet hours an hour long, three hours from now; no cap to speak of."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    start = datetime.now(BEIJING) + timedelta(hours=3)
    data["lifecycle"]["quiet_hours"] = {
        "starts": start.strftime("%H:00"),
        "ends": (start + timedelta(hours=1)).strftime("%H:00"),
    }
    data["lifecycle"]["reminders_per_week"] = 21
    data["lifecycle"]["distress_days"] = 0
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fake_wechat() -> Iterator[FakeWeChatApi]:
    with FakeInThread(FakeWeChatApi(), e2e_port(16399)) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_wechat: FakeWeChatApi
) -> Iterator[dict[str, str]]:
    scratch = tmp_path_factory.mktemp("reminders")
    policy = _policy_for_these_tests(scratch / "policy.yml")
    env = {
        "TRACKER_DB": str(scratch / "tracker.db"),
        "DATABASE_URL": database_url,
        "NEGOTIATION_POLICY": str(policy),
        "REDIS_URL": REDIS_URL,
        **wechat_stack_env(e2e_port(16399)),
        "WECHAT_REMINDER_TEMPLATE_ID": TEMPLATE_ID,
    }
    config = StackConfig(
        rasa_port=e2e_port(16305),
        action_port=e2e_port(16355),
        auth_token=API_TOKEN,
        log_dir=scratch / "log",
        extra_env=env,
    )
    with Stack(config):
        yield {"url": config.rasa_url, **env}


@pytest.fixture(autouse=True)
def _zhang_wei_free_to_contact(database_url: str) -> None:
    """Earlier tests of the session leave 张伟's cases open, his distress recent and his
    reminders counted: each would rightly hold a reminder back."""
    free_to_remind(database_url, "13800138000")


@pytest.fixture
async def debtor(stack: dict[str, str]) -> AsyncIterator[RestClient]:
    async with aiohttp.ClientSession() as session:
        yield RestClient(session, stack["url"])


async def _queue(database_url: str, stack: dict[str, str]) -> dict[str, int]:
    """What the daily sweep does after the payments, with this module's policy."""
    lifecycle = load_policy(stack["NEGOTIATION_POLICY"]).lifecycle
    db = Database(database_url)
    try:
        counts = await queue_reminders(
            db, beijing_today(), datetime.now(timezone.utc), lifecycle=lifecycle
        )
    finally:
        await db.dispose()
    return {"queued": counts.queued, "deferred": counts.deferred}


def _agreement(database_url: str, conversation_id: str) -> dict[str, Any]:
    (row,) = query(
        database_url, "SELECT * FROM agreements WHERE conversation_id = :c", c=conversation_id
    )
    return row


def _send(stack: dict[str, str]) -> dict[str, Any]:
    """`python -m bot.rasa_ext.reminders send` with the stack's settings; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.rasa_ext.reminders", "send"],
        cwd=ROOT,
        env={**os.environ, **{k: v for k, v in stack.items() if k != "url"}},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def test_the_debtor_is_told_the_plan_and_not_offered_a_second_one(
    debtor: RestClient, database_url: str
) -> None:
    await play(debtor, INSTALLMENT)
    agreement = _agreement(database_url, debtor.sender)
    text = reply_text(await debtor.say("我想协商还款"))
    for part in (agreement["reference"], "已还 0.00 元", "下一期", "已经有一份有效的还款安排"):
        assert part in text, text
    assert "[方案1]" not in text and "[转给协商专员调整]" in text
    text = reply_text(await debtor.say("我下周五先还两千"))
    assert "已经有一份有效的还款安排" in text and "确认" not in text
    text = reply_text(await debtor.say("查看还款计划"))
    assert "共 23 期" in text and "下一期" in text
    # Changing it is for a negotiator, who sees where the plan stands.
    text = reply_text(await debtor.say("/request_human"))
    [case] = handoff_cases(database_url, debtor.sender)
    assert case["reference"] in text
    (record,) = json.loads(case["summary"])["active_agreements"]
    assert (record["reference"], record["status"], record["paid"]) == (
        agreement["reference"],
        "active",
        "0.00",
    )
    assert len(record["installments"]) == 23
    active = query(
        database_url,
        "SELECT id FROM agreements WHERE account_id = :a AND status = 'active'",
        a=agreement["account_id"],
    )
    assert len(active) == 1


async def test_a_reminder_at_the_next_visit_and_a_broken_plan_told_once(
    stack: dict[str, str], database_url: str
) -> None:
    async with aiohttp.ClientSession() as session:
        first = RestClient(session, stack["url"])
        await play(first, INSTALLMENT)
        agreement = _agreement(database_url, first.sender)
        due = beijing_today() + timedelta(days=2)
        execute(
            database_url,
            "UPDATE agreement_installments SET due_date = :d"
            " WHERE agreement_id = :a AND number = 1",
            d=due,
            a=agreement["id"],
        )
        assert await _queue(database_url, stack) == {"queued": 1, "deferred": 0}
        [reminder] = query(
            database_url, "SELECT * FROM reminders WHERE agreement_id = :a", a=agreement["id"]
        )
        assert (reminder["channel"], reminder["conversation_id"]) == ("rest", first.sender)

        # The next visit: a new session of the same conversation shows it, once.
        text = reply_text(await first.say("/session_start"))
        assert "温馨提醒" in text and "1,024.35" in text and due.isoformat() in text
        assert agreement["reference"] in text
        assert "温馨提醒" not in reply_text(await first.say("/session_start"))
        [reminder] = query(database_url, "SELECT * FROM reminders WHERE id = :i", i=reminder["id"])
        assert (reminder["status"], reminder["via"]) == ("sent", "visit")

        # The sweep broke the plan: the debtor's next conversation is told, once.
        execute(
            database_url,
            "UPDATE agreements SET status = 'broken', ended_on = :d WHERE id = :a",
            d=beijing_today(),
            a=agreement["id"],
        )
        assert await _queue(database_url, stack) == {"queued": 1, "deferred": 0}
        text = reply_text(await first.say("/session_start"))
        assert agreement["reference"] in text and "结束" in text and "催收部门" in text
        second = RestClient(session, stack["url"])
        await second.say("我欠了多少钱")
        text = reply_text(await second.say(IDENTITY))
        assert "核实成功" in text and agreement["reference"] in text and "已于" in text, text
        assert "23,560.00" in text, "the account's figures follow"
        third = RestClient(session, stack["url"])
        await third.say("我欠了多少钱")
        assert agreement["reference"] not in reply_text(await third.say(IDENTITY))


async def test_wechat_reminders_use_the_api_wechat_allows(
    stack: dict[str, str], database_url: str, fake_wechat: FakeWeChatApi
) -> None:
    openid = new_openid()
    async with aiohttp.ClientSession() as session:
        wechat = WeChatClient(http_transport(session, f"{stack['url']}/webhooks/wechat/"))
        for said in ("我欠了多少钱", IDENTITY):
            assert (await wechat.push(text_message(openid, said))).status == 200
    for _ in range(300):  # an answer later than the passive reply is still being made
        if query(
            database_url,
            "SELECT id FROM verification_attempts WHERE conversation_id = :c AND succeeded",
            c=f"wechat:{openid}",
        ):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the WeChat conversation did not verify as 张伟")
    db = Database(database_url)
    try:
        debtor, account = await demo_account(db, "13800138000")
        today = beijing_today()
        await add_agreement(
            db,
            debtor,
            account,
            [(today + timedelta(days=1), "600.00"), (today + timedelta(days=31), "600.00")],
            conversation_id=f"wechat:{openid}",
        )
    finally:
        await db.dispose()
    before = len(fake_wechat.sent_to(openid))
    assert await _queue(database_url, stack) == {"queued": 1, "deferred": 0}
    # The user wrote a moment ago: the customer-service API.
    assert _send(stack)["sent_custom"] == 1
    sent = fake_wechat.sent_to(openid)[before:]
    assert len(sent) == 1 and "温馨提醒" in sent[0] and "600.00" in sent[0]
    assert _send(stack)["sent_custom"] == 0, "sent once"

    # More than 48 hours later (the channel's record of the last message gone): a template.
    redis.Redis.from_url(REDIS_URL).delete(last_message_key(APP_ID, openid))
    execute(
        database_url,
        "UPDATE agreement_installments SET due_date = :d WHERE number = 2 AND agreement_id ="
        " (SELECT id FROM agreements WHERE conversation_id = :c)",
        d=today + timedelta(days=2),
        c=f"wechat:{openid}",
    )
    assert (await _queue(database_url, stack))["queued"] == 1
    assert _send(stack)["sent_template"] == 1
    [message] = fake_wechat.templates[openid]
    assert message.template_id == TEMPLATE_ID and "600.00" in message.data["keyword2"]
    rows = query(
        database_url,
        "SELECT via, status FROM reminders WHERE conversation_id = :c ORDER BY id",
        c=f"wechat:{openid}",
    )
    assert [(r["via"], r["status"]) for r in rows] == [("custom", "sent"), ("template", "sent")]


def _sweep(database_url: str, policy: Path, at: datetime) -> dict[str, Any]:
    """`python -m bot.store.payments sweep --now …` on the application database; its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.store.payments", "sweep", "--now", at.isoformat()],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "NEGOTIATION_POLICY": str(policy)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def test_the_sweep_queues_reminders_defers_at_night_and_keeps_the_weekly_cap(
    debtor: RestClient, database_url: str, tmp_path: Path
) -> None:
    """The bundled quiet hours (21:00-08:00) and cap (2 a week), days simulated with `--now`.

    Only the days after distress are set to none: earlier tests of the session may have
    had 张伟 in distress.
    """
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["lifecycle"]["distress_days"] = 0
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    await play(debtor, INSTALLMENT)
    agreement = _agreement(database_url, debtor.sender)
    # Days far from any other test's sweeps; one installment a day from day + 3 on.
    day = beijing_today() + timedelta(days=400)
    for number in range(1, agreement["months"] + 1):
        execute(
            database_url,
            "UPDATE agreement_installments SET due_date = :d WHERE agreement_id = :a"
            " AND number = :n",
            d=day + timedelta(days=2 + number),
            a=agreement["id"],
            n=number,
        )

    def at(offset: int, hour: int) -> datetime:
        return datetime.combine(day + timedelta(days=offset), datetime.min.time()).replace(
            hour=hour, tzinfo=BEIJING
        )

    first = _sweep(database_url, policy, at(0, 10))
    assert (first["date"], first["reminders_queued"], first["reminders_deferred"]) == (
        day.isoformat(),
        1,
        0,
    )
    # The next day's sweep runs at 22:00: its reminder waits for the morning.
    second = _sweep(database_url, policy, at(1, 22))
    assert (second["reminders_queued"], second["reminders_deferred"]) == (1, 1)
    # The third installment's reminder would be the third in a week: none.
    third = _sweep(database_url, policy, at(2, 10))
    assert (third["reminders_queued"], third["reminders_deferred"]) == (0, 0)
    assert _sweep(database_url, policy, at(2, 11))["reminders_queued"] == 0, "swept once a day"
    rows = query(
        database_url,
        "SELECT status, send_after, key FROM reminders WHERE agreement_id = :a ORDER BY id",
        a=agreement["id"],
    )
    assert [r["status"] for r in rows] == ["queued", "deferred"]
    deferred_until = rows[1]["send_after"]
    if isinstance(deferred_until, str):  # SQLite
        deferred_until = datetime.fromisoformat(deferred_until).replace(tzinfo=timezone.utc)
    assert deferred_until == at(2, 8)
