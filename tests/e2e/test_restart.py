"""A restart of both servers in the middle of verification loses nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.audit import entries
from bot.db.engine import Database
from bot.stack import Stack, StackConfig
from tests.e2e.conftest import RestClient
from tests.e2e.conversations import reply_text

pytestmark = pytest.mark.e2e


def _stack(database_url: str, scratch: Path) -> Stack:
    return Stack(
        StackConfig(
            rasa_port=16005,
            action_port=16055,
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
            reply = await _say(session, url, sender, wrong.format("1234"))
            assert "暂停" in reply and "23,560" not in reply

    db = Database(database_url)
    try:
        actions = [entry.action for entry in await entries(db, conversation_id=sender)]
    finally:
        await db.dispose()
    assert actions.count("verification_failed") >= 3
    assert "verification_locked" in actions
    assert "disclosure" not in actions
