"""Rasa's socket.io channel with server-issued session tokens, for the web chat page.

Configured in `credentials.yml` as `bot.rasa_ext.channels.socketio.SignedSessionSocketIO`;
its name stays `socketio`, so conversations and staff replies
(`output_channel=latest`) find it as before. It differs from Rasa's own
`socketio` channel in these ways:

- **Sessions are issued by the server, and the conversation id is not the
  session's secret** (`bot.rasa_ext.channels.webchat_session`). The page asks
  with `session_request` `{"session_id": <token or null>}` and is answered with
  `session_confirm` `{"session_id": <token>, "conversation_id", "expires_at"}`:
  a fresh token of the same conversation if the one it sent is validly signed
  and unexpired, else a token of a new conversation. Messages are taken only
  with a valid token, from the socket that was given it. The conversation id
  (Rasa's sender id, what every store and the staff see) is derived one way
  from the token's session, so it cannot be used to join the conversation;
  a client cannot choose its conversation either (Rasa's channel takes any id
  the client sends). A message with an expired token is answered with
  `session_expired`: the page then asks for a session again.
- **The socket joins its conversation's room.** Rasa 3.6 calls python-socketio's
  `enter_room` without awaiting it, which with the python-socketio in our lock
  never joins: replies sent to the conversation's room reached nobody.
- **Staff replies say who wrote them** (`{"text", "staff"}`), so the page can
  show that a person is answering.
- **Replicas share their sockets through Redis** when `WEBCHAT_REDIS_URL` is
  set (the scale profile): python-socketio's `AsyncRedisManager` passes every
  emit to the replica holding the socket, so a staff reply sent through any
  replica reaches a debtor connected to another (required when
  `BOT_PROFILE=scale`). Without it, emits stay in this process, which is right
  for one server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint
from socketio import AsyncRedisManager, AsyncServer

from bot.profile import require_shared
from bot.rasa_ext.channels.webchat_session import (
    CONVERSATION_PREFIX,
    SessionTokens,
    WebChatSession,
    session_ids,
)
from bot.rasa_ext.reply_script import SCRIPT_KEY

logger = logging.getLogger(__name__)

__all__ = ["SessionTokens", "SignedSessionSocketIO", "WebChatOutput", "session_ids"]

#: Far above any real chat message; the NLU pipeline reads at most 500 characters.
MAX_MESSAGE_LENGTH = 20_000
#: The Redis pub/sub channel the replicas' socket.io managers talk on.
REDIS_CHANNEL = "webchat-socketio"


class WebChatOutput(SocketIOOutput):
    """Rasa's socket.io output; a staff reply carries the staff member's name.

    Every message also names the script it was written in (`script`,
    `bot.rasa_ext.reply_script`), so the page shows its own labels in it.
    """

    _script: str | None = None

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self._script = message.get(SCRIPT_KEY) if isinstance(message.get(SCRIPT_KEY), str) else None
        staff = message.get("staff")
        if staff and message.get("text"):
            await self._send_message(recipient_id, {"text": message["text"], "staff": str(staff)})
            return
        await super().send_response(recipient_id, message)

    async def _send_message(self, socket_id: str, response: Any) -> None:
        if self._script and isinstance(response, dict):
            response = {**response, SCRIPT_KEY: self._script}
        await super()._send_message(socket_id, response)


def _share_through_redis(sio: AsyncServer, url: str) -> None:
    """Replace the server's in-process manager with the Redis one, before any use."""
    manager = AsyncRedisManager(url, channel=REDIS_CHANNEL)
    manager.set_server(sio)
    sio.manager = manager


class SignedSessionSocketIO(SocketIOInput):
    """Rasa's `socketio` channel with server-issued session tokens and derived conversation ids."""

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

    async def _grant(self, sio: AsyncServer, sid: str, requested: object) -> WebChatSession:
        """Give socket `sid` a fresh token of its conversation, or of a new one, and its room."""
        current = self.sessions.read(requested)
        token = self.sessions.renew(current) if current is not None else None
        if token is None:
            token = self.sessions.issue()
        session = self.sessions.read(token)
        assert session is not None  # just issued
        for room in sio.rooms(sid, namespace=self.namespace):
            if room.startswith(CONVERSATION_PREFIX) and room != session.conversation_id:
                await sio.leave_room(sid, room, namespace=self.namespace)
        await sio.enter_room(sid, session.conversation_id, namespace=self.namespace)
        confirm = {
            "session_id": token,
            "conversation_id": session.conversation_id,
            "expires_at": session.expires_at,
        }
        await sio.emit("session_confirm", confirm, room=sid, namespace=self.namespace)
        return session

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
            await self._grant(sio, sid, requested)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            session = self.sessions.read(data.get("session_id"))
            if session is None:
                logger.info("socket.io message with an unknown or expired session token ignored")
                await sio.emit("session_expired", {}, room=sid, namespace=self.namespace)
                return
            if session.conversation_id not in sio.rooms(sid, namespace=self.namespace):
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
                    session.conversation_id,
                    input_channel=self.name(),
                    metadata=metadata,
                )
            )

        return webhook
