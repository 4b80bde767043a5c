"""WeChat official account (公众号) channel: `/webhooks/wechat/`.

Configured in `credentials.yml` as `bot.rasa_ext.channels.wechat.WeChatInput:`; the
secrets come from the environment (which wins over the file):

- `WECHAT_TOKEN`: the token set in the WeChat admin console. Without it the
  channel still loads, but answers every request with 503.
- `WECHAT_APP_ID`, `WECHAT_APP_SECRET`: for the access token of the
  customer-service message API.
- `WECHAT_AES_KEY` (43 characters): safe mode, messages are encrypted both ways
  and each one's `msg_signature` covers it. Required in the scale profile
  whenever `WECHAT_TOKEN` is set: a replica in plain mode refuses to start
  (`bot.profile.UnsafeForScale`). The default profile allows plain mode.
- `WECHAT_API_BASE`: default `https://api.weixin.qq.com`.
- `REDIS_URL`: the store of signatures used, de-duplication and buttons, and
  the access token shared by all instances (default local Redis).
- `BOT_PROFILE=scale`: several replicas share this store; when Redis is down
  nothing falls back to one process (see "When Redis is down" below).

How a message is answered:

1. `GET` is WeChat's URL verification; every `POST` must carry a valid
   signature with a timestamp at most five minutes off (either way), or it
   gets 403 before anything else happens. Bodies over 64 KB get 413, XML with
   a DTD (entity bombs, external entities) or otherwise malformed gets 400.
   Each `POST`'s signature is then accepted once by all replicas together
   (`wechat_replay`, SET NX in Redis): used again with another message it
   gets 403, with the same message `success` and no turn.
2. Text, voice with WeChat's speech recognition, and the `subscribe` event (sent
   to Rasa as `/greet`) become a turn of the conversation `wechat:<openid>`;
   any other message gets the domain's `utter_wechat_unsupported`.
3. WeChat retries a message it got no answer to within five seconds. Each
   message (by `MsgId`, events by sender and `CreateTime`) is claimed in Redis
   with SET NX: only the first delivery runs a turn; a retry waits for its
   result or answers `success`, and never starts a second turn.
4. When the turn's answer is ready within 4.5 seconds it is the passive reply;
   otherwise the channel answers `success` and sends the answer later through
   the customer-service message API. The same API carries staff replies during
   a handoff (`get_output_channel`).

When Redis is down: in the default profile the store keeps its keys in this
process (`bot.rasa_ext.channels.wechat_store`) and nothing changes here. In the scale
profile the store raises `SharedStoreUnavailable`, and each use decides:

- Claiming a request's signature (every `POST`, also of a picture or an event
  that runs no turn), claiming a message for de-duplication, or waiting as a
  retry for the first delivery's answer: HTTP 503 and no turn, so that WeChat
  delivers the message again later and no replica accepts a request it could
  not refuse when replayed, or runs a turn it cannot de-duplicate.
- Once a message is claimed its turn runs and its answer is delivered: the
  buttons lookup counts as "no buttons" (a number is passed on as it is),
  failing to record the answer or the buttons shown is logged (a retry then
  answers `success`; the next numbered reply is passed on as it is).
- The access token: no replica fetches one on its own (that would invalidate
  the token of the others). A late answer that cannot get one is logged and
  dropped, like any other failed send; a staff reply (`WeChatOutput`) raises
  to its caller, as a refused send does.

The parts: `wechat_config` (settings, conversation ids), `wechat_envelope`
(signatures, safe-mode encryption), `wechat_replay` (each signature once),
`wechat_endpoint` (from a message to its
answer), `wechat_sender` (customer-service messages, buttons), and below them
`wechat_api`, `wechat_store`, `wechat_text` and `wechat_xml`. This module is
what Rasa loads; it re-exports the channel's public names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.profile import refuse_in_scale
from bot.rasa_ext.channels.wechat_api import WeChatApi
from bot.rasa_ext.channels.wechat_config import (
    CHANNEL_NAME,
    LOGGER_NAME,
    SENDER_PREFIX,
    WeChatConfig,
    openid_of,
    sender_id,
)
from bot.rasa_ext.channels.wechat_endpoint import (
    MAX_USER_TEXT,
    SUBSCRIBE_MESSAGE,
    SUCCESS,
    UNSUPPORTED_RESPONSE,
    WeChatEndpoint,
    load_response_text,
)
from bot.rasa_ext.channels.wechat_envelope import WebReply
from bot.rasa_ext.channels.wechat_sender import WeChatOutput, WeChatSender
from bot.rasa_ext.channels.wechat_store import SharedStore

__all__ = [
    "CHANNEL_NAME",
    "MAX_USER_TEXT",
    "SENDER_PREFIX",
    "SUBSCRIBE_MESSAGE",
    "SUCCESS",
    "UNSUPPORTED_RESPONSE",
    "WeChatConfig",
    "WeChatEndpoint",
    "WeChatInput",
    "WeChatOutput",
    "WeChatSender",
    "WebReply",
    "load_response_text",
    "openid_of",
    "sender_id",
]

logger = logging.getLogger(LOGGER_NAME)


def _args(request: Request) -> dict[str, str]:
    return {name: str(request.args.get(name) or "") for name in request.args}


def _http(reply: WebReply) -> HTTPResponse:
    return response.text(reply.body, status=reply.status, content_type=reply.content_type)


class WeChatInput(InputChannel):
    """The WeChat official-account channel (`/webhooks/wechat/`)."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls(WeChatConfig.from_sources(credentials, os.environ))

    def __init__(self, config: WeChatConfig | None = None) -> None:
        self.config = config or WeChatConfig.from_sources(None, os.environ)
        refuse_in_scale(self.config.scale_problem())
        problem = self.config.problem()
        if problem:
            logger.warning("WeChat channel loaded but disabled: %s", problem)
        self.store = SharedStore(self.config.redis_url)
        self.api = WeChatApi(
            self.config.app_id, self.config.app_secret, self.config.api_base, store=self.store
        )
        self.sender = WeChatSender(self.config, self.api, self.store)
        self.endpoint: WeChatEndpoint | None = None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        endpoint = WeChatEndpoint(self.config, on_new_message, self.sender)
        self.endpoint = endpoint
        webhook = Blueprint("wechat_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return _http(await endpoint.verify(_args(request)))

        @webhook.route("/", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return _http(await endpoint.receive(_args(request), request.body or b""))

        @webhook.listener("after_server_stop")
        async def close(*_: Any) -> None:
            await self.api.close()
            await self.store.close()

        return webhook

    def get_output_channel(self) -> OutputChannel | None:
        if self.config.problem():
            return None
        return WeChatOutput(self.sender)
