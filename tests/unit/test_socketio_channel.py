"""The web chat's socket.io channel: signed session ids, rooms, staff names."""

from __future__ import annotations

from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from bot.rasa_ext.channels.socketio import (
    SessionIds,
    SignedSessionSocketIO,
    WebChatOutput,
    session_ids,
)

KEY = "k" * 32


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> tuple[SignedSessionSocketIO, list[UserMessage]]:
    monkeypatch.setenv("WEBCHAT_SESSION_KEY", KEY)
    session_ids.cache_clear()
    received: list[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message)

    made = SignedSessionSocketIO.from_credentials({"user_message_evt": "user_uttered"})
    assert isinstance(made, SignedSessionSocketIO)
    made.blueprint(on_new_message)
    return made, received


class FakeServer:
    """Records what the channel does with python-socketio's server."""

    def __init__(self) -> None:
        self.joined: dict[str, set[str]] = {}
        self.emitted: list[tuple[str, Any, str]] = []

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.joined.setdefault(sid, {sid}).add(room)

    async def emit(self, event: str, data: Any, room: str, namespace: str | None = None) -> None:
        self.emitted.append((event, data, room))

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        return sorted(self.joined.get(sid, {sid}))


def _fake(channel: SignedSessionSocketIO) -> tuple[FakeServer, dict[str, Any]]:
    sio: Any = channel.sio
    fake = FakeServer()
    sio.enter_room, sio.emit, sio.rooms = fake.enter_room, fake.emit, fake.rooms
    return fake, sio.handlers["/"]


def test_session_ids_are_signed() -> None:
    ids = SessionIds(KEY.encode())
    issued = ids.issue()
    assert ids.valid(issued)
    assert not SessionIds(b"another key, 32 bytes long....").valid(issued)
    nonce, _, signature = issued.partition(".")
    assert not ids.valid(f"{nonce}.{'0' * 32}")
    for forged in (None, "", "abc", "wechat:openid", "x" * 65, issued + "0", 42):
        assert not ids.valid(forged)
    with pytest.raises(ValueError):
        SessionIds(b"short")


def test_a_non_ascii_session_id_is_refused_not_an_error() -> None:
    ids = SessionIds(KEY.encode())
    nonce, _, signature = ids.issue().partition(".")
    for forged in (
        f"{nonce}.{'签' * 32}",  # compare_digest raises TypeError on such strings
        f"{nonce}.{signature[:31]}é",
        f"{nonce}.{signature[:31]}\ud800",  # a lone surrogate, as JSON can carry
        f"{nonce[:31]}\ud800.{signature}",
        f"{'签' * 32}.{signature}",
    ):
        assert len(forged) == 65 and not ids.valid(forged)


def test_the_channel_keeps_rasas_name(channel: tuple[SignedSessionSocketIO, Any]) -> None:
    assert channel[0].name() == "socketio"
    assert isinstance(channel[0].get_output_channel(), WebChatOutput)


async def test_a_session_is_issued_or_continued_and_its_room_joined(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]],
) -> None:
    made, _ = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("socket-1", None)
    [(event, issued, room)] = fake.emitted
    assert (event, room) == ("session_confirm", "socket-1")
    assert made.sessions.valid(issued) and issued in fake.joined["socket-1"]

    # A reloaded page continues its own session ...
    await handlers["session_request"]("socket-2", {"session_id": issued})
    assert fake.emitted[-1] == ("session_confirm", issued, "socket-2")
    # ... but an id the client made up (another debtor's, say) is never granted.
    await handlers["session_request"]("socket-3", {"session_id": "e2e-somebody-else"})
    granted = fake.emitted[-1][1]
    assert granted != "e2e-somebody-else" and made.sessions.valid(granted)
    # Nor is a hostile non-ASCII one: the socket gets a new session, no error.
    hostile = f"{issued[:33]}{'签' * 32}"
    await handlers["session_request"]("socket-4", {"session_id": hostile})
    granted = fake.emitted[-1][1]
    assert granted not in (hostile, issued) and made.sessions.valid(granted)


async def test_messages_only_from_the_socket_of_a_valid_session(
    channel: tuple[SignedSessionSocketIO, list[UserMessage]],
) -> None:
    made, received = channel
    fake, handlers = _fake(made)
    await handlers["session_request"]("socket-1", None)
    session_id = fake.emitted[-1][1]
    say = handlers["user_uttered"]

    await say("socket-1", {"session_id": session_id, "message": "你好"})
    [message] = received
    assert (message.sender_id, message.text, message.input_channel) == (
        session_id,
        "你好",
        "socketio",
    )
    for sid, data in [
        ("socket-2", {"session_id": session_id, "message": "冒充"}),  # not this socket's session
        ("socket-1", {"session_id": "forged", "message": "伪造"}),
        ("socket-1", {"session_id": f"{session_id[:33]}{'签' * 32}", "message": "伪造"}),
        ("socket-1", {"session_id": session_id, "message": 123}),
        ("socket-1", {"session_id": session_id, "message": "长" * 20_001}),
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
