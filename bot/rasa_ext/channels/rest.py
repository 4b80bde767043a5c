"""Rasa's REST channel, for signed integrators, with a clear 400 answer for malformed requests.

Rasa's own `RestInput` turns a non-string `message` into an exception that it
logs and answers with an empty list, so the caller cannot tell a silent bot
from a broken request. This channel keeps the same URL
(`/webhooks/rest/webhook`) and response format, and rejects a request whose
`sender` or `message` has the wrong type or size with HTTP 400 and a JSON
error naming the field. The input channel recorded is always `rest`, whatever
the body's `input_channel` says.

With `REST_INTEGRATORS` set (required in the scale profile) only integrators
that sign their requests may use it (`bot.rasa_ext.channels.rest_auth`): an
unsigned request is answered with HTTP 401. The sender id is the client's
choice, but never the id of another channel's conversation.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.rasa_ext.channels.rest_auth import RestAuthenticator
from bot.rasa_ext.channels.staff_replies import (
    InvalidRequest,
    after_timestamp,
    json_object,
    staff_replies,
)

__all__ = ["CheckedRestInput", "InvalidRequest"]

MAX_SENDER_LENGTH = 128
#: Far above any real chat message; the NLU pipeline reads at most 500 characters.
MAX_MESSAGE_LENGTH = 20_000


#: Conversation ids the other channels issue (web chat: today's and the earlier
#: signed form): REST may not write into them or read them, or anyone could
#: take over a WeChat or web chat conversation.
OTHER_CHANNELS_IDS = re.compile(r"(?:wechat|webchat):.*|[0-9a-f]{32}\.[0-9a-f]{32}", re.DOTALL)


def _checked_sender(sender: object) -> str:
    """A valid REST sender id."""
    if not isinstance(sender, str) or not sender.strip():
        raise InvalidRequest("'sender' must be a non-empty string")
    if len(sender) > MAX_SENDER_LENGTH:
        raise InvalidRequest(f"'sender' must be at most {MAX_SENDER_LENGTH} characters")
    if OTHER_CHANNELS_IDS.fullmatch(sender):
        raise InvalidRequest("'sender' is a conversation id of another channel")
    return sender


class CheckedRestInput(RestInput):
    """`rest` channel that validates `sender` and `message` before Rasa sees them."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def __init__(self, auth: RestAuthenticator | None = None) -> None:
        super().__init__()
        self.auth = auth if auth is not None else RestAuthenticator.from_env()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        """Rasa's REST routes, plus `GET /webhooks/rest/staff_messages`.

        While a negotiator holds the conversation, their replies cannot travel
        in the answer to a REST request; a REST client polls for them with
        `?sender=<id>&after=<timestamp of the last one it has>`
        (`bot.rasa_ext.channels.staff_replies`). Ids of other channels'
        conversations are refused (the web chat page asks its own channel).
        """
        webhook = super().blueprint(on_new_message)

        @webhook.route("/staff_messages", methods=["GET"])
        async def staff_messages(request: Request) -> HTTPResponse:
            await self.auth.check(request)
            sender = _checked_sender(request.args.get("sender", ""))
            after = after_timestamp(request.args.get("after"))
            tracker_store = request.app.ctx.agent.tracker_store
            return response.json(await staff_replies(tracker_store, sender, after))

        return webhook

    def _extract_input_channel(self, req: Request) -> str:
        # Rasa takes the body's `input_channel`; staff replies and the assistant's
        # return go to a conversation's latest input channel, so a REST client
        # naming `wechat` could have them sent to a WeChat user. It is always `rest`.
        return self.name()

    async def _extract_sender(self, req: Request) -> str:
        # Rasa's handler asks for the sender first: the signature is checked here.
        await self.auth.check(req)
        return _checked_sender(json_object(req).get("sender"))

    def _extract_message(self, req: Request) -> str:
        message = json_object(req).get("message", "")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise InvalidRequest("'message' must be a string")
        if len(message) > MAX_MESSAGE_LENGTH:
            raise InvalidRequest(f"'message' must be at most {MAX_MESSAGE_LENGTH} characters")
        return message
