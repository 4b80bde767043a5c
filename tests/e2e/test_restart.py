"""A restart of both servers in the middle of verification loses nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.store.audit import entries
from bot.store.cases import close_case
from bot.store.engine import Database
from bot.tools.stack import Stack, StackConfig
from tests.e2e.conftest import (
    API_TOKEN,
    RestClient,
    add_staff_member,
    handoff_cases,
    resume,
    tracker_of,
)
from tests.support.conversations import reply_text

pytestmark = pytest.mark.e2e


def _stack(database_url: str, scratch: Path) -> Stack:
    return Stack(
        StackConfig(
            rasa_port=16005,
            action_port=16055,
            auth_token=API_TOKEN,
            log_dir=scratch / "log",
            extra_env={"TRACKER_DB": str(scratch / "tracker.db"), "DATABASE_URL": database_url},
        )
    )


async def _say(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> str:
    client = RestClient(session, url)
    client.sender = sender
    return reply_text(await client.say(text))


async def test_form_state_lockout_and_audit_survive_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    sender = f"restart-{uuid.uuid4().hex}"
    wrong = "我叫张伟，身份证后四位{}，手机13800138000"
    with _stack(database_url, tmp_path) as stack:
        async with aiohttp.ClientSession() as session:
            url = stack.config.rasa_url
            assert "姓名" in await _say(session, url, sender, "我欠多少钱")
            assert "未能通过" in await _say(session, url, sender, wrong.format("9999"))
            assert "未能通过" in await _say(session, url, sender, wrong.format("8888"))
            assert "身份证号的后四位" in await _say(session, url, sender, "张伟")

    with _stack(database_url, tmp_path) as stack:
        async with aiohttp.ClientSession() as session:
            url = stack.config.rasa_url
            # The form resumes where it was: the name is kept, the ID digits are asked.
            reply = await _say(session, url, sender, "7777")
            assert "手机号" in reply
            reply = await _say(session, url, sender, "13800138000")
            assert "暂停" in reply and "核实成功" not in reply
            # Locked: the conversation waits for a person, and the bot stays silent.
            assert await _say(session, url, sender, wrong.format("1234")) == ""

    db = Database(database_url)
    try:
        actions = [entry.action for entry in await entries(db, conversation_id=sender)]
    finally:
        await db.dispose()
    assert actions.count("verification_failed") >= 3
    assert "verification_locked" in actions
    assert "disclosure" not in actions


async def test_a_handoff_survives_a_restart_and_resumes_after_it(
    database_url: str, tmp_path: Path
) -> None:
    sender = f"restart-{uuid.uuid4().hex}"
    with _stack(database_url, tmp_path) as stack:
        async with aiohttp.ClientSession() as session:
            url = stack.config.rasa_url
            assert "案件编号" in await _say(session, url, sender, "转人工")
            assert await _say(session, url, sender, "我先说一下情况") == ""

    with _stack(database_url, tmp_path) as stack:
        async with aiohttp.ClientSession() as session:
            url = stack.config.rasa_url
            # Still paused after the restart; nothing the debtor said is lost.
            assert await _say(session, url, sender, "还有人吗") == ""
            said = [
                e["text"] for e in (await tracker_of(url, sender))["events"] if e["event"] == "user"
            ]
            assert said[-3:] == ["转人工", "我先说一下情况", "还有人吗"]
            [case] = handoff_cases(database_url, sender)
            db = Database(database_url)
            try:
                boss = await add_staff_member(db, f"boss{case['id']}", "主管", "supervisor")
                await close_case(db, case["id"], boss, "no_contact", "")
            finally:
                await db.dispose()
            assert "智能助手继续为您服务" in reply_text(await resume(url, sender))
            assert "征信" in await _say(session, url, sender, "逾期会影响征信吗")
