"""The WeChat official-account channel against the running stack.

The stack is started with the WeChat settings of `tests.support.wechat_fake`
(safe mode, API base pointing at the fake WeChat server this module starts on
`E2E_WECHAT_PORT`, default 15099). WeChat is played by `WeChatClient`: every
message is signed and encrypted as WeChat does, and every passive reply is
checked and decrypted. Answers that miss the passive reply arrive at the fake
customer-service message API.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from bot.domain.conduct import conduct_problems
from bot.domain.script import HONG_KONG, SIMPLIFIED, convert
from bot.tools.stack import ROOT
from tests.support.conversations import CONVERSATIONS_DIR, check_turn, load, script_after
from tests.support.ports import e2e_port
from tests.support.rasa_api import staff_reply, tracker_of
from tests.support.records import handoff_cases, query
from tests.support.wechat_fake import (
    FAKE_PORT,
    FakeInThread,
    FakeWeChatApi,
    WeChatClient,
    event,
    http_transport,
    image_message,
    new_msg_id,
    new_openid,
    text_message,
    voice_message,
)

pytestmark = pytest.mark.e2e

RESULTS = ROOT / "results"

#: How long the load test runs.
LOAD_SECONDS = float(os.environ.get("WECHAT_LOAD_SECONDS", 60))
LOAD_USERS = 20
FAQ_QUESTIONS = [
    "逾期会影响征信吗",
    "催收部门和协商部门有什么区别",
    "信用卡还不上会坐牢吗",
    "什么是停息挂账",
    "个性化分期最长能分几年",
    "逾期了罚息怎么算",
]


@pytest.fixture(scope="session")
def wechat_api() -> Iterator[FakeWeChatApi]:
    """The fake WeChat server the stack's WeChat channel talks to."""
    with FakeInThread(FakeWeChatApi(), e2e_port(FAKE_PORT, "E2E_WECHAT_PORT")) as fake:
        yield fake


@pytest.fixture
async def wechat(rasa_url: str) -> AsyncIterator[WeChatClient]:
    async with aiohttp.ClientSession() as session:
        yield WeChatClient(http_transport(session, f"{rasa_url}/webhooks/wechat/"))


def assert_conduct(texts: list[str]) -> None:
    for text in texts:
        problems = conduct_problems(text)
        assert not problems, f"reply breaks the rules of conduct: {problems}: {text}"


async def settle(api: FakeWeChatApi, openid: str, count: int, quiet: float = 0.8) -> int:
    """Wait until no customer-service message has arrived for `quiet` seconds."""
    while True:
        await asyncio.sleep(quiet)
        now = len(api.sent_to(openid))
        if now == count:
            return count
        count = now


@dataclass
class WeChatUser:
    """One follower of the account talking to the assistant."""

    client: WeChatClient
    api: FakeWeChatApi
    openid: str = field(default_factory=new_openid)

    @property
    def sender(self) -> str:
        return f"wechat:{self.openid}"

    async def push(self, fields: dict[str, Any], *, expect_reply: bool = True) -> list[str]:
        """Push one message; the texts that answer it (passive reply and later messages)."""
        before = len(self.api.sent_to(self.openid))
        reply = await self.client.push(fields)
        assert reply.status == 200, reply.body
        texts = [reply.content] if reply.content else []
        if reply.content is None and expect_reply:
            await self.api.wait_for(self.openid, before + 1, timeout=30)
        if expect_reply:
            count = await settle(self.api, self.openid, len(self.api.sent_to(self.openid)), 0.3)
            texts += self.api.sent_to(self.openid)[before:count]
        assert_conduct(texts)
        return texts

    async def say(self, text: str, *, expect_reply: bool = True) -> list[str]:
        return await self.push(text_message(self.openid, text), expect_reply=expect_reply)


@pytest.fixture
def user(wechat: WeChatClient, wechat_api: FakeWeChatApi) -> WeChatUser:
    return WeChatUser(wechat, wechat_api)


async def test_url_verification(wechat: WeChatClient) -> None:
    reply = await wechat.verify("e2e-echo")
    assert (reply.status, reply.body) == (200, "e2e-echo")
    forged = {**wechat.signed_query(), "signature": "0" * 40}
    assert (await wechat.verify("e2e-echo", forged)).status == 403


async def test_subscribe_is_greeted_by_the_automated_assistant(user: WeChatUser) -> None:
    [greeting] = await user.push(event(user.openid, "subscribe"))
    assert "自动回复" in greeting or "智能助手" in greeting
    assert "协商" in greeting


async def test_pictures_and_voice_without_text_get_the_please_type_reply(user: WeChatUser) -> None:
    [answer] = await user.push(image_message(user.openid))
    assert "请直接打字" in answer
    [answer] = await user.push(voice_message(user.openid, ""))
    assert "请直接打字" in answer
    # A voice message WeChat recognised is a turn like any other.
    [answer] = await user.push(voice_message(user.openid, "逾期会影响征信吗"))
    assert "征信" in answer


async def test_a_negotiation_over_wechat_is_recorded(user: WeChatUser, database_url: str) -> None:
    conversation = load(CONVERSATIONS_DIR / "negotiation" / "zhang_wei_installment.yml")
    failures = []
    for turn in conversation.turns:
        said = turn.user
        if said in ("选1", "确认"):
            said = "1"  # the numbered lines stand for the buttons
        texts = await user.say(said)
        # On WeChat a button "[方案1]" is the line "回复 1 选择「方案1」".
        turn.contains = [
            f"「{c[1:-1]}」" if c.startswith("[") and c.endswith("]") else c for c in turn.contains
        ]
        problems = check_turn(turn, [{"text": t} for t in texts])
        if problems:
            failures.append(f"{turn.user!r} -> {texts!r}: {problems}")
    assert not failures, "\n".join(failures)
    agreements = query(
        database_url, "SELECT * FROM agreements WHERE conversation_id = :c", c=user.sender
    )
    assert len(agreements) == 1


async def test_a_staff_reply_reaches_the_wechat_user(
    user: WeChatUser, rasa_url: str, database_url: str, wechat_api: FakeWeChatApi
) -> None:
    texts = await user.say("转人工")
    [case] = handoff_cases(database_url, user.sender)
    assert case["channel"] == "wechat"
    assert case["reference"] in "\n".join(texts)
    # A person holds the conversation: the bot stays silent.
    assert await user.say("在吗", expect_reply=False) == []
    before = len(wechat_api.sent_to(user.openid))
    await staff_reply(rasa_url, user.sender, "您好，我是协商专员小李，我们来看看您的情况。")
    sent = await wechat_api.wait_for(user.openid, before + 1, timeout=10)
    assert sent[before:] == ["您好，我是协商专员小李，我们来看看您的情况。"]


@dataclass
class LoadFigures:
    messages: int = 0
    copies: int = 0
    passive: int = 0
    by_api: int = 0
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)


async def _load_user(
    client: WeChatClient, api: FakeWeChatApi, figures: LoadFigures, until: float, seed: int
) -> None:
    rng = random.Random(seed)
    openid = new_openid()
    figures.sent[openid] = 0
    while time.monotonic() < until:
        msg_id = new_msg_id()
        message = text_message(openid, rng.choice(FAQ_QUESTIONS), msg_id)
        extra = rng.randint(0, 3)
        concurrent = rng.randint(0, extra)
        before = len(api.sent_to(openid))
        started = time.time()

        async def copy(delay: float, fields: dict[str, Any] = message) -> tuple[Any, float]:
            await asyncio.sleep(delay)
            reply = await client.push(fields)
            return reply, time.time()

        answered = await asyncio.gather(
            copy(0.0), *(copy(rng.uniform(0, 1.5)) for _ in range(concurrent))
        )
        replies = [reply for reply, _ in answered]
        figures.messages += 1
        figures.copies += 1 + extra
        figures.sent[openid] += 1
        assert all(r.status == 200 for r in replies), [r.body for r in replies]
        contents = {r.content for r in replies if r.content}
        if len(contents) > 1:
            figures.doubled.append(f"{msg_id}: different passive replies {contents}")
        if contents:
            figures.passive += 1
            figures.latencies.append(min(at for r, at in answered if r.content) - started)
            assert_conduct(list(contents))
        else:
            try:
                await api.wait_for(openid, before + 1, timeout=30)
            except AssertionError:
                figures.missing.append(f"{msg_id}: no reply")
                continue
            figures.by_api += 1
            figures.latencies.append(api.messages[openid][before].at - started)
        count = await settle(api, openid, len(api.sent_to(openid)), 0.3)
        if contents and count > before:
            figures.doubled.append(f"{msg_id}: passive reply and {count - before} API messages")
        assert_conduct(api.sent_to(openid)[before:count])
        for _ in range(extra - concurrent):
            late = await client.push(message)
            assert late.status == 200
            if late.content and late.content not in contents:
                figures.doubled.append(f"{msg_id}: a late copy got {late.content!r}")
        await asyncio.sleep(rng.uniform(0.1, 0.5))


async def test_twenty_users_with_retries_get_one_answer_per_message(
    rasa_url: str, database_url: str, wechat: WeChatClient, wechat_api: FakeWeChatApi
) -> None:
    figures = LoadFigures()
    until = time.monotonic() + LOAD_SECONDS
    sent_before = len(wechat_api.all_sent())
    await asyncio.gather(
        *(_load_user(wechat, wechat_api, figures, until, seed) for seed in range(LOAD_USERS))
    )
    await asyncio.sleep(1.0)
    turns_twice = []
    for openid, sent in figures.sent.items():
        tracker = await tracker_of(rasa_url, f"wechat:{openid}")
        user_turns = [e for e in tracker["events"] if e.get("event") == "user"]
        if len(user_turns) != sent:
            turns_twice.append(f"{openid}: {sent} messages, {len(user_turns)} user turns")
    latencies = sorted(figures.latencies)
    summary = (
        f"{figures.messages} messages ({figures.copies} deliveries), "
        f"{figures.passive} passive + {figures.by_api} by API, "
        f"p50 {statistics.median(latencies):.2f}s "
        f"p95 {latencies[int(len(latencies) * 0.95) - 1]:.2f}s, "
        f"{len(wechat_api.all_sent()) - sent_before} API messages"
    )
    print(f"\nWeChat load: {summary}")
    # Kept for the README: one line per run and database.
    backend = database_url.split(":", 1)[0].split("+", 1)[0]
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "wechat-load.txt").open("a", encoding="utf-8") as figures_file:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        figures_file.write(
            f"{stamp} UTC, {backend}, {LOAD_USERS} users, {LOAD_SECONDS} s: {summary}\n"
        )
    assert figures.messages >= LOAD_USERS
    assert not figures.missing, figures.missing
    assert not figures.doubled, figures.doubled
    assert not turns_twice, turns_twice
    assert figures.passive + figures.by_api == figures.messages


async def test_a_taiwan_negotiation_over_wechat_is_in_traditional(
    user: WeChatUser, database_url: str, lift_holds: None
) -> None:
    conversation = load(CONVERSATIONS_DIR / "traditional" / "taiwan_installment_agreement.yml")
    failures = []
    script = SIMPLIFIED
    numbered: list[str] = []
    for turn in conversation.turns:
        script = script_after(script, turn)
        said = "1" if turn.user in ("選1", "確認") else turn.user
        texts = await user.say(said)
        numbered += [line for t in texts for line in t.splitlines() if "「" in line]
        # On WeChat a button "[方案1]" is the line "回覆 1 選擇「方案1」".
        turn.contains = [
            f"「{c[1:-1]}」" if c.startswith("[") and c.endswith("]") else c for c in turn.contains
        ]
        problems = check_turn(turn, [{"text": t} for t in texts], script)
        if problems:
            failures.append(f"{turn.user!r} -> {texts!r}: {problems}")
    assert not failures, "\n".join(failures)
    assert "回覆 1 選擇「方案1」" in numbered
    assert all(line.startswith("回覆 ") for line in numbered if "選擇「" in line)
    agreements = query(
        database_url, "SELECT * FROM agreements WHERE conversation_id = :c", c=user.sender
    )
    assert len(agreements) == 1


async def test_a_staff_reply_reaches_a_hong_kong_wechat_user_in_traditional(
    user: WeChatUser, rasa_url: str, database_url: str, wechat_api: FakeWeChatApi
) -> None:
    texts = await user.say("唔該，我要轉人工")
    [case] = handoff_cases(database_url, user.sender)
    joined = "\n".join(texts)
    assert case["reference"] in joined and "人工協商專員" in joined
    before = len(wechat_api.sent_to(user.openid))
    await staff_reply(rasa_url, user.sender, "您好，我是协商专员小李，我们来看看您的情况。")
    sent = await wechat_api.wait_for(user.openid, before + 1, timeout=10)
    assert sent[before:] == [convert("您好，我是协商专员小李，我们来看看您的情况。", HONG_KONG)]
    assert sent[before:] == ["您好，我是協商專員小李，我們來看看您的情況。"]
