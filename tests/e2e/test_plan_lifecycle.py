"""After the agreement, against the running stack: payments, the daily sweep, the next conversation.

张伟 agrees to a personalised installment plan and 刘洋 promises to pay by the
month's end, both in conversations. A payments file pays 张伟's first
installment and part of the second; the sweep is run for the days that matter,
in order, as the daily job would: the first installment is paid, the second is
late and then breaks the plan (hold lifted, `broken_plans` + 1, audited), and
刘洋's unpaid promise breaks too. 张伟's next conversation is told that the plan
ended; 刘洋 promises again, pays, and the promise is kept. The reminders the
sweeps queued: one queued at night waits for the morning, none beyond the
weekly cap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.domain.clock import BEIJING, beijing_today
from bot.domain.policy import load_policy
from bot.tools.stack import ROOT
from tests.support.conversations import CONVERSATIONS_DIR, play, reply_text
from tests.support.rasa_api import RestClient
from tests.support.records import execute, free_to_remind, query

pytestmark = pytest.mark.e2e

LIFECYCLE = load_policy().lifecycle
GRACE = timedelta(days=LIFECYCLE.grace_days)
DAY = timedelta(days=1)
ZHANG, LIU = "6222021001000001", "6222021001000004"
COUNTS = (
    "installments_paid",
    "installments_late",
    "agreements_broken",
    "agreements_completed",
    "promises_kept",
    "promises_broken",
    "reminders_queued",
    "reminders_deferred",
)


def payments_cli(database_url: str, *args: str) -> dict[str, Any]:
    """`python -m bot.store.payments …` on the stack's database; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.store.payments", *args],
        cwd=ROOT,
        env=os.environ | {"DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def import_payments(database_url: str, tmp_path: Path, rows: list[str], today: date) -> None:
    path = tmp_path / f"payments-{uuid.uuid4().hex[:6]}.csv"
    path.write_text("account_no,paid_on,amount,reference\n" + "\n".join(rows) + "\n")
    result = payments_cli(database_url, "import", str(path), "--today", today.isoformat())
    assert (result["imported"], result["rejected"]) == (len(rows), 0), result


def sweep(database_url: str, day: date, at: time = time(9, 0)) -> dict[str, Any]:
    moment = datetime.combine(day, at).isoformat(timespec="minutes")
    result = payments_cli(database_url, "sweep", "--now", moment)
    assert result["date"] == day.isoformat()
    return result


def agreements_of(database_url: str, account_no: str) -> list[dict[str, Any]]:
    return query(
        database_url,
        "SELECT g.* FROM agreements g JOIN accounts a ON a.id = g.account_id"
        " WHERE a.account_no = :n ORDER BY g.id",
        n=account_no,
    )


def schedule_of(database_url: str, agreement_id: int) -> list[dict[str, Any]]:
    return query(
        database_url,
        "SELECT * FROM agreement_installments WHERE agreement_id = :i ORDER BY number",
        i=agreement_id,
    )


def account(database_url: str, account_no: str) -> dict[str, Any]:
    return query(database_url, "SELECT * FROM accounts WHERE account_no = :n", n=account_no)[0]


def day_of(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@pytest.fixture
def fresh_accounts(database_url: str) -> Iterator[None]:
    """张伟's and 刘洋's accounts without another active plan (earlier tests of the session
    record some); accounts, plans and the days swept put back as they were after."""
    numbers = {"z": ZHANG, "l": LIU}
    for mobile in ("13800138000", "13600136003"):
        free_to_remind(database_url, mobile)
    accounts = query(
        database_url,
        "SELECT id, collections_hold, broken_plans FROM accounts WHERE account_no IN (:z, :l)",
        **numbers,
    )
    ids = [row["id"] for row in accounts]
    active = [
        row["id"]
        for row in query(
            database_url,
            "SELECT id FROM agreements WHERE status = 'active' AND account_id IN (:a, :b)",
            a=ids[0],
            b=ids[1],
        )
    ]
    for agreement_id in active:
        execute(
            database_url, "UPDATE agreements SET status = 'completed' WHERE id = :i", i=agreement_id
        )
    swept = {row["day"] for row in query(database_url, "SELECT day FROM sweep_runs")}
    yield
    # The days swept here may be swept again by later tests of the session.
    for row in query(database_url, "SELECT day FROM sweep_runs"):
        if row["day"] not in swept:
            execute(database_url, "DELETE FROM sweep_runs WHERE day = :d", d=row["day"])
    for row in accounts:
        execute(
            database_url,
            "UPDATE accounts SET collections_hold = :h, broken_plans = :b WHERE id = :i",
            h=row["collections_hold"],
            b=row["broken_plans"],
            i=row["id"],
        )
    for agreement_id in active:
        execute(
            database_url,
            "UPDATE agreements SET status = 'active' WHERE id = :i AND NOT EXISTS"
            " (SELECT 1 FROM agreements o WHERE o.account_id = agreements.account_id"
            " AND o.status = 'active')",
            i=agreement_id,
        )


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_payments_and_sweeps_keep_and_break_plans_and_the_debtor_is_told(
    client: RestClient,
    session: aiohttp.ClientSession,
    rasa_url: str,
    database_url: str,
    tmp_path: Path,
    fresh_accounts: None,
) -> None:
    today = beijing_today()
    before = {n: len(agreements_of(database_url, n)) for n in (ZHANG, LIU)}
    await play(client, CONVERSATIONS_DIR / "negotiation" / "zhang_wei_installment.yml")
    plan = agreements_of(database_url, ZHANG)[before[ZHANG]]
    first, second = schedule_of(database_url, plan["id"])[:2]
    due1, due2 = day_of(first["due_date"]), day_of(second["due_date"])
    liu = RestClient(session, rasa_url)
    await play(liu, CONVERSATIONS_DIR / "negotiation" / "liu_yang_promise.yml")
    promise = agreements_of(database_url, LIU)[before[LIU]]
    assert promise["plan"] == "promise_to_pay"
    promised_by = day_of(promise["last_due"])

    # The bank's file: the first installment in full on its day, the second short.
    suffix = uuid.uuid4().hex[:8].upper()
    import_payments(
        database_url,
        tmp_path,
        [
            f"{ZHANG},{due1},{first['amount']},E2E{suffix}Z1",
            f"{ZHANG},{due2},500.00,E2E{suffix}Z2",
        ],
        due2 + 30 * DAY,
    )

    # At 22:30 three days before the first due date: its reminder waits for the morning.
    night = sweep(database_url, due1 - 3 * DAY, time(22, 30))
    assert night["reminders_deferred"] >= 1, night
    totals = dict.fromkeys(COUNTS, 0)
    for key in COUNTS:
        totals[key] += night[key]
    days = sorted({due1, promised_by + GRACE + DAY, due2 + DAY, due2 + GRACE + DAY})
    results = {}
    for day in days:
        results[day] = sweep(database_url, day)
        for key in COUNTS:
            totals[key] += results[day][key]
        if day == due1:
            assert results[day]["installments_paid"] >= 1
        if day == due2 + DAY:
            states = [row["status"] for row in schedule_of(database_url, plan["id"])[:2]]
            assert states == ["paid", "late"]
            assert agreements_of(database_url, ZHANG)[before[ZHANG]]["status"] == "active"
    assert (totals["agreements_broken"], totals["promises_broken"]) == (1, 1), totals
    assert totals["installments_late"] >= 1

    ended = agreements_of(database_url, ZHANG)[before[ZHANG]]
    assert (ended["status"], day_of(ended["ended_on"])) == ("broken", due2 + GRACE + DAY)
    paid = [Decimal(str(row["paid_amount"])) for row in schedule_of(database_url, plan["id"])[:2]]
    assert paid == [Decimal(str(first["amount"])), Decimal("500.00")]
    zhang = account(database_url, ZHANG)
    assert (bool(zhang["collections_hold"]), zhang["broken_plans"]) == (False, 1)
    audited = query(
        database_url,
        "SELECT action, details FROM audit_log WHERE conversation_id = :c ORDER BY id",
        c=plan["conversation_id"],
    )
    assert [row["action"] for row in audited].count("agreement_broken") == 1
    assert agreements_of(database_url, LIU)[before[LIU]]["status"] == "broken"
    assert bool(account(database_url, LIU)["collections_hold"]) is False

    # The next conversation is told the plan ended.
    again = RestClient(session, rasa_url)
    await again.say("你好")
    told = reply_text(await again.say("我是张伟 身份证尾号1234 手机13800138000"))
    assert plan["reference"] in told and "结束" in told, told

    # 刘洋 promises again and pays: kept.
    later = RestClient(session, rasa_url)
    await later.say("我月底还清")
    reply = reply_text(await later.say("刘洋 身份证尾号8765 手机13600136003"))
    if "确认" not in reply:
        reply = reply_text(await later.say("我月底还清"))
    assert "确认" in reply, reply
    assert "已为您登记" in reply_text(await later.say("好的"))
    second_promise = agreements_of(database_url, LIU)[-1]
    assert second_promise["status"] == "active"
    amount = sum(
        Decimal(str(row["amount"])) for row in schedule_of(database_url, second_promise["id"])
    )
    import_payments(database_url, tmp_path, [f"{LIU},{today},{amount},E2E{suffix}L1"], today)
    kept = sweep(database_url, days[-1] + DAY)
    assert kept["promises_kept"] == 1, kept
    assert agreements_of(database_url, LIU)[-1]["status"] == "completed"

    # Reminders: the first installment's, queued at night, waits for the morning;
    # none beyond the weekly cap.
    reminders = query(
        database_url,
        "SELECT * FROM reminders WHERE agreement_id IN (:a, :b) ORDER BY id",
        a=plan["id"],
        b=promise["id"],
    )
    night_one = [r for r in reminders if r["key"] == f"installment:{first['id']}"]
    assert len(night_one) == 1, reminders
    morning = datetime.combine(due1 - 2 * DAY, LIFECYCLE.quiet_hours.ends, BEIJING)
    assert aware(night_one[0]["send_after"]) == morning
    sends: dict[int, list[datetime]] = {}
    for reminder in reminders:
        sends.setdefault(reminder["debtor_id"], []).append(aware(reminder["send_after"]))
    for times in sends.values():
        times.sort()
        for index, start in enumerate(times):
            window = [t for t in times[index:] if t < start + 7 * DAY]
            assert len(window) <= LIFECYCLE.reminders_per_week, times


def aware(value: Any) -> datetime:
    """A stored time as an aware datetime (SQLite gives naive UTC text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
