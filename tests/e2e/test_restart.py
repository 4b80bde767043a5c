"""A restart of both servers in the middle of a conversation loses nothing.

Each test plays the first part of its conversation, then the action server,
the Rasa server (and the staff console) are stopped (SIGTERM, each waited for
until it has exited) and started again on the same tracker and application
databases, and the test plays the rest against the new servers.

The servers restarted are those of the stack the other tests use, and the
tests of this module share one restart: the fixture `restarted` plays the part
before the restart of every selected test (each in a conversation of its own),
restarts the stack once and gives each test its conversation to go on with. A
Rasa start costs about 90 s, and two per test cost more than the rest of the
suite. When the tests run against a stack started elsewhere (E2E_RASA_URL),
the fixture starts a stack of its own, restarted in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bot.store.audit import entries
from bot.store.cases import close_case
from bot.store.engine import Database
from bot.tools.stack import Stack, StackConfig
from tests.support.conversations import reply_text
from tests.support.ports import e2e_port
from tests.support.rasa_api import API_TOKEN, RestClient, resume, tracker_of
from tests.support.records import add_staff_member, handoff_cases

pytestmark = pytest.mark.e2e

#: The part of a test played before the restart: (session, Rasa URL, sender).
Before = Callable[[aiohttp.ClientSession, str, str], Awaitable[None]]

#: The part of each test played before the restart, by the test's name.
BEFORE: dict[str, Before] = {}


def before_the_restart(test_name: str) -> Callable[[Before], Before]:
    def register(part: Before) -> Before:
        BEFORE[test_name] = part
        return part

    return register


def _stack(database_url: str, scratch: Path) -> Stack:
    return Stack(
        StackConfig(
            rasa_port=e2e_port(16005),
            action_port=e2e_port(16055),
            auth_token=API_TOKEN,
            log_dir=scratch / "log",
            extra_env={"TRACKER_DB": str(scratch / "tracker.db"), "DATABASE_URL": database_url},
        )
    )


async def _say(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> str:
    client = RestClient(session, url)
    client.sender = sender
    return reply_text(await client.say(text))


@dataclass
class Restarted:
    """The stack after the restart, and the conversations begun before it."""

    url: str
    senders: dict[str, str] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)

    def sender(self, test_name: str) -> str:
        """The conversation the test began before the restart; what failed in it, if anything."""
        if test_name in self.errors:
            raise self.errors[test_name]
        return self.senders[test_name]


async def _play_before(restarted: Restarted, tests: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        for name in tests:
            sender = f"restart-{uuid.uuid4().hex}"
            restarted.senders[name] = sender
            try:
                await BEFORE[name](session, restarted.url, sender)
            except Exception as error:  # raised again by the test (Restarted.sender)
                restarted.errors[name] = error


@pytest.fixture(scope="module")
def restarted(
    request: pytest.FixtureRequest,
    database_url: str,
    session_stack: Stack | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Restarted]:
    """Every selected test's first part played, then the stack restarted once."""
    selected = {
        getattr(item, "originalname", item.name)
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    }
    with contextlib.ExitStack() as cleanup:
        if session_stack is not None:
            stack = session_stack
        else:
            stack = cleanup.enter_context(_stack(database_url, tmp_path_factory.mktemp("restart")))
        played = Restarted(stack.config.rasa_url)
        asyncio.run(_play_before(played, [name for name in BEFORE if name in selected]))
        stack.restart()
        yield played


WRONG = "我叫张伟，身份证后四位{}，手机13800138000"


@before_the_restart("test_form_state_lockout_and_audit_survive_a_restart")
async def _form_state_before(session: aiohttp.ClientSession, url: str, sender: str) -> None:
    assert "姓名" in await _say(session, url, sender, "我欠多少钱")
    assert "未能通过" in await _say(session, url, sender, WRONG.format("9999"))
    assert "未能通过" in await _say(session, url, sender, WRONG.format("8888"))
    assert "身份证号的后四位" in await _say(session, url, sender, "张伟")


async def test_form_state_lockout_and_audit_survive_a_restart(
    database_url: str, restarted: Restarted
) -> None:
    sender = restarted.sender("test_form_state_lockout_and_audit_survive_a_restart")
    async with aiohttp.ClientSession() as session:
        url = restarted.url
        # The form resumes where it was: the name is kept, the ID digits are asked.
        reply = await _say(session, url, sender, "7777")
        assert "手机号" in reply
        reply = await _say(session, url, sender, "13800138000")
        assert "暂停" in reply and "核实成功" not in reply
        # Locked: the conversation waits for a person, and the bot stays silent.
        assert await _say(session, url, sender, WRONG.format("1234")) == ""

    db = Database(database_url)
    try:
        actions = [entry.action for entry in await entries(db, conversation_id=sender)]
    finally:
        await db.dispose()
    assert actions.count("verification_failed") >= 3
    assert "verification_locked" in actions
    assert "disclosure" not in actions


@before_the_restart("test_a_handoff_survives_a_restart_and_resumes_after_it")
async def _handoff_before(session: aiohttp.ClientSession, url: str, sender: str) -> None:
    assert "案件编号" in await _say(session, url, sender, "转人工")
    assert await _say(session, url, sender, "我先说一下情况") == ""


async def test_a_handoff_survives_a_restart_and_resumes_after_it(
    database_url: str, restarted: Restarted
) -> None:
    sender = restarted.sender("test_a_handoff_survives_a_restart_and_resumes_after_it")
    async with aiohttp.ClientSession() as session:
        url = restarted.url
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
