"""The assistant as a cluster: replicas share every conversation, survive a crash,
and carry a staff reply to the replica that holds the debtor's socket.

Messages go straight to the Rasa replicas (not only through nginx), each to a
random one, so that one conversation's turns are handled by different
processes. What each conversation's tracker holds afterwards is read from the
tracker store's `events` table in PostgreSQL: every stored event, not the
window the assistant loads.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import Any

import aiohttp
import pytest
import socketio

from bot.domain.redaction import redact_text
from bot.tools.cluster import Cluster
from tests.support.cluster import (
    Conversation,
    Queues,
    app_rows,
    bearer,
    drain,
    quoted,
    reply_texts,
    say,
    sign_in,
    signed_rest,
    stored_events,
    turns_of,
)
from tests.support.wechat_fake import (
    FakeWeChatApi,
    WeChatClient,
    http_transport,
    new_openid,
    text_message,
)

pytestmark = pytest.mark.cluster

#: What debtors type, each with a text its replies must hold ("" for none):
#: questions, verification, the account, their circumstances and the offers, in
#: Simplified and Traditional Chinese. The texts prove the actions ran (the
#: replicas are compared with a reference that would share any failure). None of
#: the scripts records an agreement, so fifty debtors can share the demo accounts.
SCRIPTS: list[list[tuple[str, str]]] = [
    [
        ("你好", ""),
        ("逾期会影响征信吗", "征信"),
        ("我欠了多少钱", "姓名"),
        ("我叫张伟，身份证后四位1234，手机13800138000", "核实成功"),
        ("催收部门和协商部门有什么区别", "协商"),
        ("什么是停息挂账", ""),
        ("我現在欠多少", "元"),
        ("谢谢", ""),
    ],
    [
        ("我逾期多久了", "姓名"),
        ("陈静", "身份证号的后四位"),
        ("后四位是0026", "手机号"),
        ("135 0013 5004", "逾期 95 天"),
        ("罚息是怎么算的", ""),
        ("再见", ""),
    ],
    [
        ("我想协商还款", "核实"),
        ("我是张伟 身份证尾号1234 手机13800138000", "核实成功"),
        ("收入五千，开销两千五，没有别的贷款", "原因"),
        ("被裁员了", "持续多久"),
        ("半年", "每个月最多能还"),
        ("不确定", "一次凑出"),
        ("没有", "方案1"),
        ("逾期会影响征信吗", "征信"),
    ],
    [
        ("協商部門是做什麼的", "協商"),
        ("你是真人还是机器人", ""),
        ("最低还款会不会算逾期", ""),
        ("我想申請停息掛賬", "核實"),
    ],
    [
        ("帮我查查欠款", "姓名"),
        ("我叫李娜", "身份证号的后四位"),
        ("手机13900139009", "身份证号的后四位"),
        ("不对，手机号是13900139001", "身份证号的后四位"),
        ("5678", "逾期 62 天"),
    ],
]
MESSAGES = [[message for message, _ in script] for script in SCRIPTS]
#: The ID suffixes and mobiles the scripts type: stored and published masked.
TYPED_SUFFIXES = frozenset({"1234", "0026", "5678"})
TYPED_MOBILES = ("13800138000", "13500135004", "135 0013 5004", "13900139009", "13900139001")


def as_stored(message: str) -> str:
    """A message as the tracker store keeps it: verification details masked."""
    return redact_text(message, TYPED_SUFFIXES)


def assert_stored_once_in_order(cluster: Cluster, conversation: Conversation) -> None:
    """The tracker holds each acknowledged message once, in order, each followed
    by exactly the replies the debtor received for it."""
    stored = turns_of(stored_events(cluster, conversation.sender))
    expected = [
        (as_stored(message), reply_texts(replies)) for message, replies in conversation.acknowledged
    ]
    assert stored == expected, conversation.sender


async def _reference_replies(urls: list[str], times: int = 1) -> list[list[list[str]]]:
    """Each script played once (`times` over in one conversation), on one replica
    alone: what one instance answers."""
    rng = random.Random(0)
    references = []
    async with aiohttp.ClientSession() as session:
        for script in SCRIPTS:
            conversation = Conversation()
            for turn, (message, expected) in enumerate(script * times):
                replies = await say(session, urls[:1], conversation, message, rng)
                if turn < len(script):  # the texts are those of a new conversation
                    assert expected in "".join(reply_texts(replies)), (message, replies)
            references.append([reply_texts(replies) for _, replies in conversation.acknowledged])
    return references


async def test_fifty_concurrent_conversations_across_replicas(
    cluster: Cluster, played: dict[str, list[str]]
) -> None:
    urls = cluster.config.rasa_urls
    references = await _reference_replies(urls)
    conversations = [Conversation() for _ in range(50)]
    scripts = [MESSAGES[i % len(MESSAGES)] for i in range(50)]

    async def play(conversation: Conversation, script: list[str], seed: int) -> None:
        # One generator per conversation: which replica gets each message does
        # not depend on how the fifty conversations interleave.
        rng = random.Random(seed)
        for message in script:
            await say(session, urls, conversation, message, rng)

    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(
                play(c, s, seed)
                for seed, (c, s) in enumerate(zip(conversations, scripts, strict=True))
            )
        )

    log = (cluster.config.log_dir / "nginx-access.log").read_text(encoding="utf-8")
    assert "POST /webhook 200" in log
    assert not re.findall(r"POST /webhook [45]\d\d", log), "every action server call succeeds"
    played["fifty"] = [conversation.sender for conversation in conversations]
    served = {url for conversation in conversations for url in conversation.replicas}
    assert served == set(urls), "every replica must have answered some messages"
    mixed = [c for c in conversations if len(set(c.replicas)) > 1]
    assert len(mixed) >= 45, "most conversations must have been handled by both replicas"
    for index, conversation in enumerate(conversations):
        assert not conversation.retried
        received = [reply_texts(replies) for _, replies in conversation.acknowledged]
        assert received == references[index % len(MESSAGES)], conversation.sender
        assert_stored_once_in_order(cluster, conversation)


async def test_one_conversation_burst_is_handled_in_order(cluster: Cluster) -> None:
    """Messages of one conversation sent at once to both replicas are handled one
    at a time (the Redis lock store): each is stored once, each followed by its
    own replies, never interleaved with another's."""
    urls = cluster.config.rasa_urls
    messages = ["你好", "逾期会影响征信吗", "什么是停息挂账", "罚息是怎么算的", "谢谢", "再见"]
    conversation = Conversation()

    async def send(session: aiohttp.ClientSession, url: str, message: str) -> tuple[str, list[str]]:
        async with session.post(
            f"{url}/webhooks/rest/webhook",
            **signed_rest(conversation.sender, message),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response:
            assert response.status == 200
            return message, reply_texts(await response.json())

    async with aiohttp.ClientSession() as session:
        answered = await asyncio.gather(
            *(send(session, urls[i % len(urls)], m) for i, m in enumerate(messages))
        )
    stored = turns_of(stored_events(cluster, conversation.sender))
    assert sorted(text for text, _ in stored) == sorted(messages)
    assert dict(stored) == dict(answered)


async def test_staff_reply_reaches_a_debtor_on_another_replica(
    cluster: Cluster, played: dict[str, list[str]]
) -> None:
    """A debtor asks for a person through one replica and reconnects to the
    other; a negotiator claims the case in the console and replies (the console
    calls Rasa on nginx's internal API port, with a JWT); every reply reaches
    the debtor's socket, including those that nginx handed to the replica that
    does not hold it."""
    first, second = cluster.config.rasa_urls
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def connect(url: str, token: str | None) -> tuple[socketio.AsyncClient, dict[str, Any]]:
        client = socketio.AsyncClient(reconnection=False)
        confirmed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # {"session_id": the page's token, "conversation_id": what the stores and staff see}
        client.on("session_confirm", lambda data: confirmed.done() or confirmed.set_result(data))
        client.on("bot_uttered", lambda message: received.put_nowait(message))
        # Long-polling: the aiohttp of Rasa 3.6's lock has no client websocket
        # timeout class, which python-engineio's websocket client needs.
        await client.connect(url, transports=["polling"], socketio_path="/socket.io")
        await client.emit("session_request", {"session_id": token})
        return client, await asyncio.wait_for(confirmed, 10)

    debtor, confirm = await connect(first, None)
    session_id = confirm["conversation_id"]
    played["handoff"] = [session_id]
    handoff = {"message": "我要转人工", "session_id": confirm["session_id"]}
    await debtor.emit("user_uttered", handoff)
    handoff_reply = await asyncio.wait_for(received.get(), 30)
    assert "专员" in handoff_reply["text"]
    await debtor.disconnect()
    debtor, same_session = await connect(second, confirm["session_id"])
    assert same_session["conversation_id"] == session_id
    while not received.empty():
        received.get_nowait()

    cases = app_rows(
        cluster,
        "SELECT id, reason FROM handoff_cases WHERE conversation_id = %s AND closed_at IS NULL",
        session_id,
    )
    assert [reason for _, reason in cases] == ["request_human"], cases
    case_id = cases[0][0]

    from bot.console.__main__ import reset_demo_user

    password = await reset_demo_user(cluster.config.env["DATABASE_URL"])
    console = cluster.config.console_url
    texts = [f"您好，我是李专员，第{n}条回复。" for n in range(1, 5)]
    started = time.time()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
        csrf = await sign_in(staff, console, password)
        headers = {"X-CSRF-Token": csrf}
        async with staff.post(f"{console}/api/cases/{case_id}/claim", headers=headers) as response:
            assert response.status == 200, await response.text()
        for text in texts:
            async with staff.post(
                f"{console}/api/cases/{case_id}/reply", json={"text": text}, headers=headers
            ) as response:
                assert response.status == 200, await response.text()

    delivered = [await asyncio.wait_for(received.get(), 15) for _ in texts]
    await debtor.disconnect()
    assert [message["text"] for message in delivered] == texts
    assert all(message.get("staff") for message in delivered)
    # nginx handed the replies to both replicas: some crossed through Redis.
    log = (cluster.config.log_dir / "nginx-access.log").read_text(encoding="utf-8")
    upstreams = set(
        re.findall(
            # nginx logs the path decoded ($uri): the id as it is.
            rf"POST /conversations/{re.escape(session_id)}/tracker/events 200 "
            r"upstream=(\S+)",
            log,
        )
    )
    ports = {url.rsplit(":", 1)[1] for url in (first, second)}
    assert {u.rsplit(":", 1)[1] for u in upstreams} == ports
    assert time.time() - started < 60


async def test_a_console_session_holds_on_every_console(cluster: Cluster) -> None:
    """Signed in on one console, the staff member is signed in on the other; signed
    out on the other, the first refuses the same cookie."""
    from bot.console.__main__ import reset_demo_user

    password = await reset_demo_user(cluster.config.env["DATABASE_URL"])
    one, other = (f"http://127.0.0.1:{cluster.config.console_port(i)}" for i in range(2))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
        await sign_in(staff, one, password)
        async with staff.get(f"{other}/api/me") as response:
            assert response.status == 200
            me = await response.json()
        cookies = staff.cookie_jar.filter_cookies(one)
        async with staff.post(f"{other}/logout", headers={"X-CSRF-Token": me["csrf_token"]}) as r:
            assert r.status in (200, 303)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as copy:
        copy.cookie_jar.update_cookies(cookies)
        async with copy.get(f"{one}/api/me", allow_redirects=False) as response:
            assert response.status == 401


async def test_a_lock_out_counts_failures_on_every_replica(cluster: Cluster) -> None:
    """Three failed verifications, each through another replica, lock the conversation."""
    urls = cluster.config.rasa_urls
    conversation = Conversation()
    rng = random.Random(3)
    turns = [
        (urls[0], "查询一下我的欠款金额", "姓名"),
        (urls[1], "我是刘洋 身份证尾号1111 手机13600136003", "2 次"),
        (urls[0], "我是刘洋 身份证尾号2222 手机13600136003", "1 次"),
        (urls[1], "我是刘洋 身份证尾号3333 手机13600136003", "暂停"),
    ]
    async with aiohttp.ClientSession() as session:
        for url, message, expected in turns:
            replies = await say(session, [url], conversation, message, rng)
            assert expected in "".join(reply_texts(replies)), replies
        replies = await say(
            session, [urls[0]], conversation, "我是刘洋 身份证尾号8765 手机13600136003", rng
        )
    assert replies == []  # locked and handed to a person: the bot stays silent
    assert app_rows(
        cluster,
        "SELECT count(*) FROM verification_locks WHERE conversation_id = %s",
        conversation.sender,
    ) == [(1,)]


async def test_a_wechat_retry_on_the_other_replica_gets_no_second_turn(
    cluster: Cluster, wechat_api: FakeWeChatApi
) -> None:
    """WeChat resends a message it got no answer to, and the load balancer may hand
    the copy to another replica: the message is still handled once."""
    openid = new_openid()
    message = text_message(openid, "逾期会影响征信吗")
    async with aiohttp.ClientSession() as session:
        clients = [
            WeChatClient(http_transport(session, f"{url}/webhooks/wechat/"))
            for url in cluster.config.rasa_urls
        ]
        first = await asyncio.gather(clients[0].push(message), clients[1].push(message))
        again = await clients[1].push(message)
    await asyncio.sleep(2)
    # One turn, one answer: every copy that WeChat might still be waiting on
    # carries that same answer (WeChat shows the user only one of them), and
    # nothing more was sent through the customer-service API.
    stored = turns_of(stored_events(cluster, f"wechat:{openid}"))
    assert len(stored) == 1 and stored[0][0] == "逾期会影响征信吗"
    (answer,) = stored[0][1]
    assert "征信" in answer
    passive = [r.content for r in [*first, again] if r.content]
    assert set(passive + wechat_api.sent_to(openid)) == {answer}
    assert len(wechat_api.sent_to(openid)) <= 1 and (passive or wechat_api.sent_to(openid))


async def test_rabbitmq_gets_every_event_once_and_the_audit_trail(
    cluster: Cluster, queues: Queues, played: dict[str, list[str]]
) -> None:
    """Rasa's event broker publishes each stored event of every conversation once,
    in order, whichever replica stored it; the audit relay publishes the offers
    and the handoff."""
    published: dict[str, list[tuple[str, float]]] = {}
    events = await drain(queues.events)
    for event in events:
        published.setdefault(event["sender_id"], []).append((event["event"], event["timestamp"]))
    # What the queue carries is masked like the store: no mobile or ID suffix typed.
    everything = json.dumps(events, ensure_ascii=False)
    for mobile in TYPED_MOBILES:
        assert mobile not in everything
    said = " ".join(e.get("text") or "" for e in events if e["event"] == "user")
    assert "****" in said
    assert not [suffix for suffix in TYPED_SUFFIXES if suffix in said]
    for sender in played["fifty"] + played["handoff"]:
        stored = [(e["event"], e["timestamp"]) for e in stored_events(cluster, sender)]
        assert published.get(sender) == stored, sender

    audit: list[dict[str, Any]] = []
    for _ in range(20):  # the relay polls every second
        audit += await drain(queues.audit)
        opened = {e["conversation_id"] for e in audit if e["action"] == "handoff_opened"}
        if set(played["handoff"]) <= opened:
            break
        await asyncio.sleep(1)
    ids = [entry["id"] for entry in audit]
    assert len(ids) == len(set(ids)), "each audit entry is published once"
    shown = {entry["conversation_id"] for entry in audit if entry["action"] == "offers_shown"}
    negotiated = played["fifty"][MESSAGES.index(MESSAGES[2]) :: len(MESSAGES)]
    assert set(negotiated) <= shown
    assert set(played["handoff"]) <= opened


async def test_failover_when_a_rasa_server_and_an_action_server_die(cluster: Cluster) -> None:
    """One Rasa replica and one action server are killed mid-run: conversations go
    on through the survivors, nothing acknowledged is lost, and the killed
    replica, restarted, serves the same conversations again."""
    urls = cluster.config.rasa_urls
    references = await _reference_replies(urls, times=2)
    rng = random.Random(11)
    conversations = [Conversation() for _ in range(20)]
    scripts = [MESSAGES[i % len(MESSAGES)] * 2 for i in range(20)]
    halfway = asyncio.Event()
    at_crash: list[int] = []

    async def play(conversation: Conversation, script: list[str]) -> None:
        for message in script:
            await say(session, urls, conversation, message, rng)
            if sum(len(c.acknowledged) for c in conversations) >= 60:
                halfway.set()

    async def crash() -> None:
        await halfway.wait()
        cluster.kill("rasa-2")
        cluster.kill("actions-2")
        at_crash.extend(len(c.acknowledged) for c in conversations)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(
            crash(), *(play(c, s) for c, s in zip(conversations, scripts, strict=True))
        )

    assert sum(len(c.retried) for c in conversations) > 0, "the crash must have hit requests"
    diverged: list[str] = []
    for conversation, script, crashed in zip(conversations, scripts, at_crash, strict=True):
        # Every message was answered, by the survivor once the other was dead.
        assert [message for message, _ in conversation.acknowledged] == script
        assert set(conversation.replicas[crashed + 1 :]) <= {urls[0]}
        reference = references[MESSAGES.index(script[: len(script) // 2])]
        # Compared masked: a suffix typed again bare once verified is not known as
        # one, and a message sent again may have met another state of the form.
        stored = [
            (as_stored(text), replies)
            for text, replies in turns_of(stored_events(cluster, conversation.sender))
        ]
        # A message whose replica died while handling it was sent again: had the
        # dead replica stored it just before dying, it is there twice in a row.
        once = [t for i, t in enumerate(stored) if i == 0 or t[0] != stored[i - 1][0]]
        assert len(stored) - len(once) <= len(conversation.retried)
        assert [text for text, _ in once] == [as_stored(m) for m in script], conversation.sender
        for turn, (message, replies) in enumerate(conversation.acknowledged):
            if turn not in conversation.retried:
                assert once[turn][1] == reply_texts(replies), (conversation.sender, message)
        for turn, (message, replies) in enumerate(conversation.acknowledged):
            # Every message is answered (the one in flight may have lost its action).
            assert replies or turn == crashed, (conversation.sender, message)
            if reply_texts(replies) != reference[turn]:
                # Only the turn in flight when the servers died may go another way
                # (an action call cut off mid-way); the conversation may then take
                # another path, which the rest of the script no longer matches.
                assert turn == crashed or turn in conversation.retried, (
                    conversation.sender,
                    turn,
                    crashed,
                    reply_texts(replies),
                    reference[turn],
                )
                diverged.append(conversation.sender)
                break
    assert len(diverged) <= len(conversations) // 4, diverged

    await asyncio.to_thread(cluster.restart, "actions-2")
    await asyncio.to_thread(cluster.restart, "rasa-2")
    access_log = cluster.config.log_dir / "nginx-access.log"
    seen = access_log.stat().st_size
    async with aiohttp.ClientSession() as session:
        for conversation in conversations[:5]:
            async with session.post(
                f"{urls[1]}/webhooks/rest/webhook",
                **signed_rest(conversation.sender, "我欠了多少钱"),
            ) as response:
                assert response.status == 200
                assert await response.json()
            async with session.get(
                f"{urls[1]}/conversations/{quoted(conversation.sender)}/tracker",
                headers=bearer(cluster),
            ) as response:
                tracker = await response.json()
            assert tracker["latest_message"]["text"] == "我欠了多少钱"
            assert len(turns_of(stored_events(cluster, conversation.sender))) >= 1 + len(
                conversation.acknowledged
            )
    with access_log.open(encoding="utf-8") as log:
        log.seek(seen)
        calls = re.findall(r"POST /webhook (\d+) upstream=\S+:(\d+)", log.read())
    assert {status for status, _ in calls} == {"200"}
    restarted = str(cluster.config.action_port(1))
    assert restarted in {port for _, port in calls}, "the restarted action server serves again"
