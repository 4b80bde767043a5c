"""The web chat's socket.io channel: session tokens, derived conversation ids, rooms, staff."""

from __future__ import annotations

from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from bot.rasa_ext.channels.socketio import (
    SessionTokens,
    SignedSessionSocketIO,
    WebChatOutput,
    session_ids,
)

KEY = "k" * 32
HOUR = 3600


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> SessionTokens:
    return SessionTokens(KEY.encode(), ttl=24 * HOUR, max_age=7 * 24 * HOUR, clock=clock)


@pytest.fixture
def channel(
    monkeypatch: pytest.MonkeyPatch, tokens: SessionTokens
) -> tuple[SignedSessionSocketIO, list[UserMessage]]:
    monkeypatch.setenv("WEBCHAT_SESSION_KEY", KEY)
    session_ids.cache_clear()
    received: list[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message)

    made = SignedSessionSocketIO.from_credentials({"user_message_evt": "user_uttered"})
    assert isinstance(made, SignedSessionSocketIO)
    made.sessions = tokens  # the same key, on the test's clock
    made.blueprint(on_new_message)
    return made, received


class FakeServer:
    """Records what the channel does with python-socketio's server."""

    def __init__(self) -> None:
        self.joined: dict[str, set[str]] = {}
        self.emitted: list[tuple[str, Any, str]] = []

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.joined.setdefault(sid, {sid}).add(room)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.joined.setdefault(sid, {sid}).discard(room)

    async def emit(self, event: str, data: Any, room: str, namespace: str | None = None) -> None:
        self.emitted.append((event, data, room))

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        return sorted(self.joined.get(sid, {sid}))

    def confirmed(self) -> dict[str, Any]:
        event, data, _ = self.emitted[-1]
        assert event == "session_confirm"
        assert isinstance(data, dict)
        return data


def _fake(channel: SignedSessionSocketIO) -> tuple[FakeServer, dict[str, Any]]:
    sio: Any = channel.sio
    fake = FakeServer()
    sio.enter_room, sio.leave_room = fake.enter_room, fake.leave_room
    sio.emit, sio.rooms = fake.emit, fake.rooms
    return fake, sio.handlers["/"]


# --- the tokens -------------------------------------------------------------------------------


def test_tokens_are_signed_and_forgeries_refused(tokens: SessionTokens, clock: Clock) -> None:
    issued = tokens.issue()
    assert tokens.valid(issued)
    other = SessionTokens(b"another key, 32 bytes long....", clock=clock)
    assert not other.valid(issued)
    body, _, signature = issued.rpartition(".")
    assert not tokens.valid(f"{body}.{'0' * 32}")
    _, session, started, issued_at, _ = issued.split(".")
    # A later issue time, or another session, under the old signature.
    assert not tokens.valid(f"v1.{session}.{started}.{int(issued_at) + HOUR}.{signature}")
    assert not tokens.valid(f"v1.{'0' * 32}.{started}.{issued_at}.{signature}")
    for forged in (None, "", "abc", "wechat:openid", "x" * 65, issued + "0", 42, issued * 2):
        assert not tokens.valid(forged)
    with pytest.raises(ValueError):
        SessionTokens(b"short")


def test_a_non_ascii_token_is_refused_not_an_error(tokens: SessionTokens) -> None:
    body, _, signature = tokens.issue().rpartition(".")
    for forged in (
        f"{body}.{'签' * 32}",  # compare_digest raises TypeError on such strings
        f"{body}.{signature[:31]}é",
        f"{body}.{signature[:31]}\ud800",  # a lone surrogate, as JSON can carry
        f"{body[:-1]}\u0661.{signature}",  # an Arabic-Indic digit
    ):
        assert not tokens.valid(forged)


def test_a_token_expires_after_its_lifetime(tokens: SessionTokens, clock: Clock) -> None:
    issued = tokens.issue()
    session = tokens.read(issued)
    assert session is not None and session.expires_at == int(clock.now) + 24 * HOUR
    clock.now += 24 * HOUR - 1
    assert tokens.valid(issued)
    clock.now += 1
    assert not tokens.valid(issued)
    assert tokens.read(issued) is None


def test_a_token_from_the_future_is_refused(tokens: SessionTokens, clock: Clock) -> None:
    clock.now += HOUR
    later = tokens.issue()
    clock.now -= HOUR
    assert not tokens.valid(later)


def test_renewal_keeps_the_conversation_until_its_maximum_age(
    tokens: SessionTokens, clock: Clock
) -> None:
    first = tokens.read(tokens.issue())
    assert first is not None
    clock.now += 20 * HOUR
    renewed = tokens.renew(first)
    assert renewed is not None
    fresh = tokens.read(renewed)
    assert fresh is not None
    assert fresh.conversation_id == first.conversation_id
    assert fresh.expires_at == first.expires_at + 20 * HOUR
    # Renewed every day, a conversation ends after seven.
    current = fresh
    for _ in range(6):
        clock.now += 23 * HOUR
        token = tokens.renew(current)
        assert token is not None
        read = tokens.read(token)
        assert read is not None
        current = read
    clock.now = first.started + 7 * 24 * HOUR
    assert tokens.renew(current) is None


def test_the_conversation_id_is_derived_and_is_no_token(tokens: SessionTokens) -> None:
    issued = tokens.issue()
    session = tokens.read(issued)
    assert session is not None
    conversation = session.conversation_id
    assert conversation.startswith("webchat:") and len(conversation) == len("webchat:") + 32
    # Not the session, not in the token, stable, and another session has another.
    assert session.session not in conversation and conversation[8:] not in issued
    assert tokens.conversation_id(session.session) == conversation
    other = tokens.read(tokens.issue())
    assert other is not None and other.conversation_id != conversation
    # Derived under a key of its own: the same key signs tokens another way.
    assert conversation[8:] != issued.rpartition(".")[2]
    assert not tokens.valid(conversation)


# --- the channel ------------------------------------------------------------------------------


def test_the_channel_keeps_rasas_name(channel: tuple[SignedSessionSocketIO, Any]) -> None:
    assert channel[0].name() == "socketio"
    assert isinstance(channel[0].get_output_channel(), WebChatOutput)


async def test_a_session_is_issued_or_renewed_and_its_room_joined(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]], clock: Clock
) -> None:
    made, _ = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("socket-1", None)
    confirmed = fake.confirmed()
    issued, conversation = confirmed["session_id"], confirmed["conversation_id"]
    assert made.sessions.valid(issued) and conversation.startswith("webchat:")
    assert confirmed["expires_at"] == int(clock.now) + 24 * HOUR
    # The socket is in the conversation's room, never in a room named by the token.
    assert conversation in fake.joined["socket-1"] and issued not in fake.joined["socket-1"]

    # A reloaded page continues its own conversation with a fresh token.
    clock.now += HOUR
    await handlers["session_request"]("socket-2", {"session_id": issued})
    renewed = fake.confirmed()
    assert renewed["conversation_id"] == conversation
    assert renewed["session_id"] != issued and made.sessions.valid(renewed["session_id"])
    assert renewed["expires_at"] == confirmed["expires_at"] + HOUR
    # ... but an id the client made up (another debtor's, say) is never granted.
    await handlers["session_request"]("socket-3", {"session_id": "e2e-somebody-else"})
    assert fake.confirmed()["conversation_id"] != conversation
    # Nor is a hostile non-ASCII one: the socket gets a new session, no error.
    hostile = f"{issued[:-32]}{'签' * 32}"
    await handlers["session_request"]("socket-4", {"session_id": hostile})
    assert fake.confirmed()["conversation_id"] not in (conversation, hostile)


async def test_a_stolen_conversation_id_does_not_open_the_conversation(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]],
) -> None:
    """What staff, the stores and the logs see cannot be presented as a token."""
    made, received = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("debtor", None)
    conversation = fake.confirmed()["conversation_id"]

    await handlers["session_request"]("thief", {"session_id": conversation})
    assert fake.confirmed()["conversation_id"] != conversation
    assert conversation not in fake.joined["thief"]
    await handlers["user_uttered"]("thief", {"session_id": conversation, "message": "我是本人"})
    assert received == []
    assert fake.emitted[-1] == ("session_expired", {}, "thief")


async def test_an_expired_token_starts_a_new_conversation(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]], clock: Clock
) -> None:
    made, received = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("socket-1", None)
    old = fake.confirmed()
    clock.now += 24 * HOUR
    # A message with it is refused, and the page is told to ask again.
    await handlers["user_uttered"]("socket-1", {"session_id": old["session_id"], "message": "在吗"})
    assert received == [] and fake.emitted[-1] == ("session_expired", {}, "socket-1")
    await handlers["session_request"]("socket-1", {"session_id": old["session_id"]})
    new = fake.confirmed()
    assert new["conversation_id"] != old["conversation_id"]
    # The socket left the old conversation's room: its staff replies no longer reach it.
    assert fake.joined["socket-1"] == {"socket-1", new["conversation_id"]}


async def test_messages_only_from_the_socket_of_a_valid_session(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]],
) -> None:
    made, received = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("socket-1", None)
    token, conversation = fake.confirmed()["session_id"], fake.confirmed()["conversation_id"]
    say = handlers["user_uttered"]

    await say("socket-1", {"session_id": token, "message": "你好"})
    [message] = received
    assert (message.sender_id, message.text, message.input_channel) == (
        conversation,
        "你好",
        "socketio",
    )
    for sid, data in [
        ("socket-2", {"session_id": token, "message": "冒充"}),  # not this socket's session
        ("socket-1", {"session_id": "forged", "message": "伪造"}),
        ("socket-1", {"session_id": f"{token[:-32]}{'签' * 32}", "message": "伪造"}),
        ("socket-1", {"session_id": token, "message": 123}),
        ("socket-1", {"session_id": token, "message": "长" * 20_001}),
        ("socket-1", "not a dict"),
    ]:
        await say(sid, data)
    assert len(received) == 1


async def test_a_staff_reply_carries_the_staff_name() -> None:
    sent: list[tuple[str, Any, str]] = []

    class Sio:
        async def emit(self, event: str, data: Any, room: str) -> None:
            sent.append((event, data, room))

    output = WebChatOutput(Sio(), "bot_uttered")  # type: ignore[arg-type]
    await output.send_response("s1", {"text": "您好，我是专员", "staff": "李专员"})
    await output.send_response("s1", {"text": "智能助手的回复"})
    assert sent == [
        ("bot_uttered", {"text": "您好，我是专员", "staff": "李专员"}, "s1"),
        ("bot_uttered", {"text": "智能助手的回复"}, "s1"),
    ]
