"""Rasa's socket.io channel with server-issued session ids, for the web chat page.

Configured in `credentials.yml` as `bot.rasa_ext.channels.socketio.SignedSessionSocketIO`;
its name stays `socketio`, so conversations and staff replies
(`output_channel=latest`) find it as before. It differs from Rasa's own
`socketio` channel in three ways:

- **Session ids are issued by the server and signed** (HMAC-SHA256 with
  `WEBCHAT_SESSION_KEY`). A page that asks to continue a session gets it back
  only if the id carries a valid signature; otherwise it gets a new one. A
  client therefore cannot choose its conversation id, and so cannot write
  into, or listen to, another debtor's conversation (Rasa's channel takes
  any id the client sends).
- **The socket joins its session's room.** Rasa 3.6 calls python-socketio's
  `enter_room` without awaiting it, which with the python-socketio in our lock
  never joins: replies sent to the session's room reached nobody.
- **Staff replies say who wrote them** (`{"text", "staff"}`), so the page can
  show that a person is answering.
- **Replicas share their sockets through Redis** when `WEBCHAT_REDIS_URL` is
  set (the scale profile): python-socketio's `AsyncRedisManager` passes every
  emit to the replica holding the socket, so a staff reply sent through any
  replica reaches a debtor connected to another (required when
  `BOT_PROFILE=scale`). Without it, emits stay in this process, which is right
  for one server.

Without `WEBCHAT_SESSION_KEY` a random key is made at start-up (with a warning):
pages then start new conversations after every restart of the server.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint
from socketio import AsyncRedisManager, AsyncServer

from bot.profile import require_shared

logger = logging.getLogger(__name__)

#: Far above any real chat message; the NLU pipeline reads at most 500 characters.
MAX_MESSAGE_LENGTH = 20_000
#: The Redis pub/sub channel the replicas' socket.io managers talk on.
REDIS_CHANNEL = "webchat-socketio"


class WebChatOutput(SocketIOOutput):
    """Rasa's socket.io output; a staff reply carries the staff member's name."""

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        staff = message.get("staff")
        if staff and message.get("text"):
            await self._send_message(recipient_id, {"text": message["text"], "staff": str(staff)})
            return
        await super().send_response(recipient_id, message)


class SessionIds:
    """Issues and checks signed session ids: `<32 hex>.<32 hex signature>`."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("WEBCHAT_SESSION_KEY must have at least 16 characters")
        self._key = key

    def _signature(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        nonce = uuid.uuid4().hex
        return f"{nonce}.{self._signature(nonce)}"

    def valid(self, session_id: object) -> bool:
        if not isinstance(session_id, str) or len(session_id) != 65:
            return False
        nonce, _, signature = session_id.partition(".")
        if len(nonce) != 32:
            return False
        try:
            expected = self._signature(nonce).encode("utf-8")
            given = signature.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, which JSON can carry
            return False
        # Bytes: `compare_digest` refuses strings that are not ASCII with a TypeError.
        return hmac.compare_digest(given, expected)


@functools.lru_cache(maxsize=1)
def session_ids() -> SessionIds:
    """This process's issuer of web chat session ids (the REST channel checks them too)."""
    return SessionIds(_session_key())


def _session_key() -> bytes:
    key = require_shared("WEBCHAT_SESSION_KEY")
    if key:
        return key.encode()
    logger.warning(
        "WEBCHAT_SESSION_KEY is not set: a random key is used, and web chat pages "
        "start a new conversation after every restart"
    )
    return secrets.token_bytes(32)


def _share_through_redis(sio: AsyncServer, url: str) -> None:
    """Replace the server's in-process manager with the Redis one, before any use."""
    manager = AsyncRedisManager(url, channel=REDIS_CHANNEL)
    manager.set_server(sio)
    sio.manager = manager


class SignedSessionSocketIO(SocketIOInput):
    """Rasa's `socketio` channel with signed, server-issued session ids."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        channel = super().from_credentials(credentials)
        assert isinstance(channel, SignedSessionSocketIO)
        # Rooms are what replies travel by: every session has one.
        channel.session_persistence = True
        return channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions = session_ids()

    def get_output_channel(self) -> WebChatOutput | None:  # type: ignore[override]
        if self.sio is None:
            return None
        return WebChatOutput(self.sio, self.bot_message_evt)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
        sio = self.sio
        assert sio is not None
        redis_url = require_shared("WEBCHAT_REDIS_URL")
        if redis_url:
            _share_through_redis(sio, redis_url)

            @webhook.listener("after_server_start")
            async def listen_to_other_replicas(*_: Any) -> None:
                # A replica with no socket yet must still hear the others' emits
                # once one connects, and pass its own on: listen from the start.
                if not sio.manager_initialized:
                    sio.manager_initialized = True
                    sio.manager.initialize()

        # These replace the handlers of the same events that Rasa registered.
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any) -> None:
            requested = data.get("session_id") if isinstance(data, dict) else None
            session_id = requested if self.sessions.valid(requested) else self.sessions.issue()
            await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            session_id = data.get("session_id")
            if not self.sessions.valid(session_id):
                logger.info("socket.io message with an unknown session id ignored")
                return
            if session_id not in sio.rooms(sid, namespace=self.namespace):
                # Only the socket that was given the session may write into it.
                return
            text = data.get("message", "")
            if not isinstance(text, str) or len(text) > MAX_MESSAGE_LENGTH:
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            if not isinstance(metadata, dict):
                metadata = {}
            await on_new_message(
                UserMessage(
                    text,
                    WebChatOutput(sio, self.bot_message_evt),
                    session_id,
                    input_channel=self.name(),
                    metadata=metadata,
                )
            )

        return webhook
