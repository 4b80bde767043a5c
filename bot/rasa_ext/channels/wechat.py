"""WeChat official account (公众号) channel: `/webhooks/wechat/`.

Configured in `credentials.yml` as `bot.rasa_ext.channels.wechat.WeChatInput:`; the
secrets come from the environment (which wins over the file):

- `WECHAT_TOKEN`: the token set in the WeChat admin console. Without it the
  channel still loads, but answers every request with 503.
- `WECHAT_APP_ID`, `WECHAT_APP_SECRET`: for the access token of the
  customer-service message API.
- `WECHAT_AES_KEY` (43 characters): safe mode, messages are encrypted both ways.
- `WECHAT_API_BASE`: default `https://api.weixin.qq.com`.
- `REDIS_URL`: the de-duplication and button store, and the access token shared
  by all instances (default local Redis).
- `BOT_PROFILE=scale`: several replicas share this store; when Redis is down
  nothing falls back to one process (see "When Redis is down" below).

How a message is answered:

1. `GET` is WeChat's URL verification; every `POST` must carry a valid
   signature with a timestamp at most five minutes off, or it gets 403 before
   anything else happens. Bodies over 64 KB get 413, XML with a DTD (entity
   bombs, external entities) or otherwise malformed gets 400.
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

- Claiming a message for de-duplication, or waiting as a retry for the first
  delivery's answer: HTTP 503 and no turn, so that WeChat delivers the message
  again later and no replica runs a turn it cannot de-duplicate.
- Once a message is claimed its turn runs and its answer is delivered: the
  buttons lookup counts as "no buttons" (a number is passed on as it is),
  failing to record the answer or the buttons shown is logged (a retry then
  answers `success`; the next numbered reply is passed on as it is).
- The access token: no replica fetches one on its own (that would invalidate
  the token of the others). A late answer that cannot get one is logged and
  dropped, like any other failed send; a staff reply (`WeChatOutput`) raises
  to its caller, as a refused send does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import SubscribeEvent, SubscribeScanEvent, UnsubscribeEvent
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage, TextMessage, VoiceMessage
from wechatpy.utils import check_signature

from bot.rasa_ext.channels.wechat_api import DEFAULT_API_BASE, WeChatApi, WeChatApiError
from bot.rasa_ext.channels.wechat_store import (
    DEFAULT_REDIS_URL,
    SharedStore,
    SharedStoreUnavailable,
)
from bot.rasa_ext.channels.wechat_text import (
    MAX_TEXT_BYTES,
    choose,
    join_messages,
    last_buttons,
    render_message,
    split_text,
    utf8_size,
)
from bot.rasa_ext.channels.wechat_xml import (
    MAX_BODY_BYTES,
    UnsafeOrInvalidXml,
    parse_xml,
    text_reply,
    to_message,
)

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wechat"
SENDER_PREFIX = "wechat:"
#: The response for messages the assistant cannot read (pictures, locations, ...).
UNSUPPORTED_RESPONSE = "utter_wechat_unsupported"
#: What the `subscribe` event says to the assistant.
SUBSCRIBE_MESSAGE = "/greet"
#: Events that nobody is waiting for an answer to.
_SILENT_EVENTS = ("unsubscribe", "templatesendjobfinish", "masssendjobfinish")
#: The longest text message passed on to the assistant.
MAX_USER_TEXT = 2000

_PENDING = "pending"
_DEFERRED = json.dumps({"state": "deferred"})


def sender_id(openid: str) -> str:
    """The conversation id of a WeChat user (cannot collide with other channels)."""
    return f"{SENDER_PREFIX}{openid}"


def openid_of(recipient_id: str) -> str:
    """The WeChat openid of a conversation id made by `sender_id`."""
    return (
        recipient_id[len(SENDER_PREFIX) :]
        if recipient_id.startswith(SENDER_PREFIX)
        else recipient_id
    )


@dataclass(frozen=True)
class WeChatConfig:
    """Settings of the channel; see the module documentation."""

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    aes_key: str = ""
    api_base: str = DEFAULT_API_BASE
    redis_url: str = DEFAULT_REDIS_URL
    domain_path: str = "domain.yml"
    #: Answers ready later than this (seconds after the request came) go through the API.
    reply_within: float = 4.5
    max_clock_skew: float = 300.0
    dedup_ttl: float = 300.0
    buttons_ttl: float = 24 * 3600.0

    @classmethod
    def from_sources(
        cls, credentials: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> WeChatConfig:
        """Settings from the environment, else from `credentials.yml`, else the defaults."""
        given = dict(credentials or {})

        def pick(env: str, key: str, default: str = "") -> str:
            value = environ.get(env) or given.get(key) or default
            return str(value).strip()

        return cls(
            token=pick("WECHAT_TOKEN", "token"),
            app_id=pick("WECHAT_APP_ID", "app_id"),
            app_secret=pick("WECHAT_APP_SECRET", "app_secret"),
            aes_key=pick("WECHAT_AES_KEY", "aes_key"),
            api_base=pick("WECHAT_API_BASE", "api_base", DEFAULT_API_BASE),
            redis_url=pick("REDIS_URL", "redis_url", DEFAULT_REDIS_URL),
            domain_path=pick("WECHAT_DOMAIN", "domain", "domain.yml"),
        )

    @property
    def safe_mode(self) -> bool:
        return bool(self.aes_key)

    def problem(self) -> str | None:
        """Why the channel cannot serve requests, or None when it can."""
        if not self.token:
            return "the WeChat channel is not configured: set WECHAT_TOKEN"
        if self.aes_key and len(self.aes_key) != 43:
            return "WECHAT_AES_KEY must be 43 characters (safe mode)"
        if self.aes_key and not self.app_id:
            return "safe mode (WECHAT_AES_KEY) needs WECHAT_APP_ID"
        return None


@dataclass
class WebReply:
    """An HTTP answer, independent of the web framework."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _plain(status: int, text: str) -> WebReply:
    return WebReply(status, text)


SUCCESS = "success"


def load_response_text(domain_path: str, name: str) -> str | None:
    """The text of the first variation of response `name` in the domain file."""
    from rasa.shared.core.domain import Domain

    try:
        variations = Domain.load(domain_path).responses.get(name) or []
    except Exception:  # noqa: BLE001 - a broken domain must not break the channel
        logger.exception("WeChat channel: cannot read the domain %s", domain_path)
        return None
    texts = [v.get("text") for v in variations if isinstance(v, dict) and v.get("text")]
    if not texts:
        logger.error(
            "WeChat channel: the domain %s has no response %s; messages the assistant "
            "cannot read get no answer",
            domain_path,
            name,
        )
        return None
    return str(texts[0])


class _WholeMessages(CollectingOutputChannel):
    """Collects the turn's messages without splitting texts at blank lines."""

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text))


class WeChatSender:
    """Customer-service messages in order per user, and the buttons last shown."""

    def __init__(self, config: WeChatConfig, api: WeChatApi, store: SharedStore) -> None:
        self.config = config
        self.api = api
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}

    def _buttons_key(self, openid: str) -> str:
        return f"wechat:{self.config.app_id}:buttons:{openid}"

    async def remember_buttons(self, openid: str, messages: list[dict[str, Any]]) -> None:
        """Keep the buttons of these messages, or forget old ones if they show none.

        Without the store (scale profile, Redis down) this is logged and skipped:
        the answer is still delivered, and the next number is passed on as it is.
        """
        buttons = last_buttons(messages)
        try:
            if buttons:
                await self.store.set(
                    self._buttons_key(openid),
                    json.dumps(buttons, ensure_ascii=False),
                    self.config.buttons_ttl,
                )
            else:
                await self.store.delete(self._buttons_key(openid))
        except SharedStoreUnavailable as error:
            logger.warning(
                "WeChat channel: the buttons shown to %s are not kept: %s", sender_id(openid), error
            )

    async def buttons(self, openid: str) -> list[dict[str, Any]]:
        """The buttons last shown to `openid`; none when the store is unavailable."""
        try:
            raw = await self.store.get(self._buttons_key(openid))
        except SharedStoreUnavailable as error:
            logger.warning(
                "WeChat channel: the buttons shown to %s are unknown: %s", sender_id(openid), error
            )
            return []
        try:
            value = json.loads(raw) if raw else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    async def send(self, openid: str, texts: list[str]) -> None:
        """Send texts as customer-service messages, in order, each under WeChat's size limit."""
        if len(self._locks) > 10_000:
            for key in [k for k, lock in self._locks.items() if not lock.locked()]:
                del self._locks[key]
        async with self._locks.setdefault(openid, asyncio.Lock()):
            for text in texts:
                for part in split_text(text):
                    await self.api.send_text(openid, part)


class WeChatEndpoint:
    """The webhook's logic, apart from the web framework (the tests call it directly)."""

    def __init__(
        self,
        config: WeChatConfig,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        sender: WeChatSender,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.on_new_message = on_new_message
        self.sender = sender
        self.store = sender.store
        self.clock = clock
        self._crypto = (
            WeChatCrypto(config.token, config.aes_key, config.app_id)
            if config.safe_mode and config.problem() is None
            else None
        )
        self._unsupported_text: str | None = None
        self._unsupported_loaded = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- checks -----------------------------------------------------------------------

    def _check_signature(self, args: Mapping[str, str]) -> WebReply | None:
        problem = self.config.problem()
        if problem:
            return _plain(503, problem)
        signature = args.get("signature") or ""
        timestamp = args.get("timestamp") or ""
        nonce = args.get("nonce") or ""
        if not (signature and timestamp and nonce):
            return _plain(403, "missing signature, timestamp or nonce")
        try:
            check_signature(self.config.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            return _plain(403, "invalid signature")
        try:
            stamp = int(timestamp)
        except ValueError:
            return _plain(403, "invalid timestamp")
        if abs(self.clock() - stamp) > self.config.max_clock_skew:
            return _plain(403, "the timestamp is too far from now")
        return None

    async def verify(self, args: Mapping[str, str]) -> WebReply:
        """WeChat's URL verification: echo `echostr` for a valid signature."""
        rejected = self._check_signature(args)
        if rejected:
            return rejected
        return _plain(200, args.get("echostr") or "")

    def _decode(self, args: Mapping[str, str], body: bytes) -> BaseMessage | WebReply:
        if len(body) > MAX_BODY_BYTES:
            return _plain(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
        try:
            fields = parse_xml(body)
        except UnsafeOrInvalidXml as error:
            return _plain(400, str(error))
        if self._crypto is not None:
            encrypted = fields.get("Encrypt")
            msg_signature = args.get("msg_signature") or ""
            if not isinstance(encrypted, str) or not encrypted:
                return _plain(400, "safe mode: the message must be encrypted")
            if not msg_signature:
                return _plain(403, "safe mode: missing msg_signature")
            try:
                plain = self._crypto.decrypt_message(
                    {"Encrypt": encrypted}, msg_signature, args["timestamp"], args["nonce"]
                )
            except InvalidSignatureException:
                return _plain(403, "invalid msg_signature")
            except Exception:  # noqa: BLE001 - wechatpy raises many kinds for bad ciphertext
                return _plain(400, "the message cannot be decrypted")
            try:
                fields = parse_xml(plain)
            except UnsafeOrInvalidXml as error:
                return _plain(400, str(error))
        try:
            return to_message(fields)
        except UnsafeOrInvalidXml as error:
            return _plain(400, str(error))

    def _passive(self, args: Mapping[str, str], message: BaseMessage, text: str) -> WebReply:
        xml = text_reply(message, text)
        if self._crypto is not None:
            xml = self._crypto.encrypt_message(xml, args["nonce"], str(int(self.clock())))
        return WebReply(200, xml, "application/xml; charset=utf-8")

    # --- messages -------------------------------------------------------------------------

    async def unsupported_text(self) -> str | None:
        if not self._unsupported_loaded:
            self._unsupported_text = await asyncio.to_thread(
                load_response_text, self.config.domain_path, UNSUPPORTED_RESPONSE
            )
            self._unsupported_loaded = True
        return self._unsupported_text

    @staticmethod
    def user_text(message: BaseMessage) -> tuple[str, str]:
        """("turn", text to the assistant), ("unsupported", "") or ("silent", "")."""
        if isinstance(message, TextMessage):
            text = (message.content or "").strip()[:MAX_USER_TEXT]
            return ("turn", text) if text else ("unsupported", "")
        if isinstance(message, VoiceMessage):
            text = (message.recognition or "").strip()[:MAX_USER_TEXT]
            return ("turn", text) if text else ("unsupported", "")
        if isinstance(message, (SubscribeEvent, SubscribeScanEvent)):
            return ("turn", SUBSCRIBE_MESSAGE)
        if isinstance(message, UnsubscribeEvent) or (
            message.type == "event" and str(getattr(message, "event", "")) in _SILENT_EVENTS
        ):
            return ("silent", "")
        return ("unsupported", "")

    def _dedup_key(self, message: BaseMessage, fields_time: str) -> str:
        prefix = f"wechat:{self.config.app_id}"
        if message.id:
            return f"{prefix}:msg:{message.id}"
        event = str(getattr(message, "event", message.type))
        return f"{prefix}:event:{message.source}:{fields_time}:{event}"

    async def receive(self, args: Mapping[str, str], body: bytes) -> WebReply:
        """A message or event pushed by WeChat."""
        deadline = asyncio.get_running_loop().time() + self.config.reply_within
        rejected = self._check_signature(args)
        if rejected:
            return rejected
        decoded = self._decode(args, body)
        if isinstance(decoded, WebReply):
            return decoded
        message = decoded
        kind, text = self.user_text(message)
        if kind == "silent":
            return _plain(200, SUCCESS)
        if kind == "unsupported":
            reply = await self.unsupported_text()
            return self._passive(args, message, reply) if reply else _plain(200, SUCCESS)
        create_time = str(message._data.get("CreateTime", ""))
        key = self._dedup_key(message, create_time)
        try:
            if not await self.store.set(key, _PENDING, self.config.dedup_ttl, only_new=True):
                return await self._answer_retry(args, message, key, deadline)
        except SharedStoreUnavailable:
            # Scale profile, Redis down (logged by the store): WeChat delivers it again later.
            return _plain(503, "the de-duplication store is unavailable; try again later")
        return await self._answer_first(args, message, key, text, deadline)

    async def _record(self, key: str, value: str) -> None:
        """Record the state of a claimed message; without the store, only log it."""
        try:
            await self.store.set(key, value, self.config.dedup_ttl)
        except SharedStoreUnavailable as error:
            logger.warning("WeChat channel: the state of %s is not recorded: %s", key, error)

    async def _answer_retry(
        self, args: Mapping[str, str], message: BaseMessage, key: str, deadline: float
    ) -> WebReply:
        """A copy of a message that is (or was) answered by its first delivery."""
        loop = asyncio.get_running_loop()
        while True:
            value = await self.store.get(key)
            if value is None:
                return _plain(200, SUCCESS)
            if value != _PENDING:
                try:
                    reply = json.loads(value).get("reply")
                except (ValueError, AttributeError):
                    reply = None
                if isinstance(reply, str) and reply:
                    return self._passive(args, message, reply)
                return _plain(200, SUCCESS)
            if loop.time() >= deadline:
                return _plain(200, SUCCESS)
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def _answer_first(
        self, args: Mapping[str, str], message: BaseMessage, key: str, text: str, deadline: float
    ) -> WebReply:
        openid = str(message.source)
        if isinstance(message, (TextMessage, VoiceMessage)):
            payload = choose(text, await self.sender.buttons(openid))
            if payload:
                text = payload
        task = asyncio.create_task(self._turn(openid, text))
        self._keep(task)
        loop = asyncio.get_running_loop()
        try:
            messages = await asyncio.wait_for(
                asyncio.shield(task), timeout=max(0.0, deadline - loop.time())
            )
        except asyncio.TimeoutError:
            await self._record(key, _DEFERRED)
            self._keep(asyncio.create_task(self._deliver_later(openid, task)))
            return _plain(200, SUCCESS)
        except Exception:  # noqa: BLE001 - the assistant failed; WeChat must not retry it
            logger.exception("WeChat channel: the turn of %s failed", sender_id(openid))
            await self._record(key, json.dumps({"state": "done"}))
            return _plain(200, SUCCESS)
        texts = [t for t in (render_message(m) for m in messages) if t]
        passive, rest = self.passive_and_rest(texts)
        record = {"state": "done", "reply": passive}
        await self._record(key, json.dumps(record, ensure_ascii=False))
        await self.sender.remember_buttons(openid, messages)
        if rest:
            self._keep(asyncio.create_task(self._send_quietly(openid, rest)))
        return self._passive(args, message, passive) if passive else _plain(200, SUCCESS)

    @staticmethod
    def passive_and_rest(texts: list[str]) -> tuple[str | None, list[str]]:
        """The passive reply of a turn, and what has to follow as customer-service messages."""
        joined = join_messages(texts)
        if not joined:
            return None, []
        if utf8_size(joined) <= MAX_TEXT_BYTES:
            return joined, []
        parts = split_text(joined)
        return parts[0], parts[1:]

    async def _turn(self, openid: str, text: str) -> list[dict[str, Any]]:
        collector = _WholeMessages()
        await self.on_new_message(
            UserMessage(
                text,
                collector,
                sender_id(openid),
                input_channel=CHANNEL_NAME,
            )
        )
        return collector.messages

    async def _deliver_later(self, openid: str, task: asyncio.Task[list[dict[str, Any]]]) -> None:
        try:
            messages = await task
        except Exception:  # noqa: BLE001
            logger.exception("WeChat channel: the turn of %s failed", sender_id(openid))
            return
        await self.sender.remember_buttons(openid, messages)
        texts = [t for t in (render_message(m) for m in messages) if t]
        await self._send_quietly(openid, texts)

    async def _send_quietly(self, openid: str, texts: list[str]) -> None:
        try:
            await self.sender.send(openid, texts)
        except (WeChatApiError, SharedStoreUnavailable) as error:
            logger.error(
                "WeChat channel: could not send the answer to %s: %s", sender_id(openid), error
            )

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the answers still being sent (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class WeChatOutput(OutputChannel):
    """Sends through the customer-service message API (staff replies during a handoff)."""

    def __init__(self, sender: WeChatSender) -> None:
        self.sender = sender

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.sender.send(openid_of(recipient_id), [text])

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        openid = openid_of(recipient_id)
        message = {"text": text, "buttons": buttons}
        await self.sender.remember_buttons(openid, [message])
        await self.sender.send(openid, [render_message(message)])

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        logger.debug("WeChat channel: custom JSON is not shown to WeChat users")


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
