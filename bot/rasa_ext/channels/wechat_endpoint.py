"""The WeChat webhook's logic, apart from the web framework: from a message to its answer.

Each signed `POST` is accepted once (`wechat_replay`); text, voice with WeChat's
speech recognition and the `subscribe` event become a turn of the
conversation; each message is claimed in the shared store so that WeChat's
retries never start a second turn; an answer ready within
`reply_within` seconds is the passive reply, a later one goes out through the
customer-service message API (`bot.rasa_ext.channels.wechat_sender`). See
`bot.rasa_ext.channels.wechat` for the whole story, and what happens when Redis
is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from wechatpy.events import SubscribeEvent, SubscribeScanEvent, UnsubscribeEvent
from wechatpy.messages import BaseMessage, TextMessage, VoiceMessage

from bot.rasa_ext.channels.wechat_api import WeChatApiError
from bot.rasa_ext.channels.wechat_config import (
    CHANNEL_NAME,
    CUSTOMER_SERVICE_SECONDS,
    LOGGER_NAME,
    SCRIPT_SECONDS,
    WeChatConfig,
    last_message_key,
    script_key,
    sender_id,
)
from bot.rasa_ext.channels.wechat_envelope import (
    WebReply,
    check_request,
    decode_message,
    passive_reply,
    plain_reply,
    safe_mode_crypto,
)
from bot.rasa_ext.channels.wechat_replay import Admission, NonceGuard
from bot.rasa_ext.channels.wechat_sender import WeChatSender
from bot.rasa_ext.channels.wechat_store import SharedStoreUnavailable
from bot.rasa_ext.channels.wechat_text import (
    MAX_TEXT_BYTES,
    choose,
    join_messages,
    render_message,
    split_text,
    utf8_size,
)

logger = logging.getLogger(LOGGER_NAME)

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

SUCCESS = "success"
#: The answer (503) while the shared store is unavailable in the scale profile.
STORE_UNAVAILABLE = "the de-duplication store is unavailable; try again later"


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
    """Collects the turn's messages without splitting texts at blank lines.

    Each keeps the script it was converted to (`script`), for its numbered lines.
    """

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        before = len(self.messages)
        await super().send_response(recipient_id, dict(message))
        if message.get("script"):
            for collected in self.messages[before:]:
                collected["script"] = message["script"]

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text))


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
        self._crypto = safe_mode_crypto(config)
        self.nonces = NonceGuard(self.store, config.app_id, config.max_clock_skew, clock)
        self._unsupported_text: str | None = None
        self._unsupported_loaded = False
        self._tasks: set[asyncio.Task[Any]] = set()

    async def verify(self, args: Mapping[str, str]) -> WebReply:
        """WeChat's URL verification: echo `echostr` for a valid signature."""
        rejected = check_request(self.config, args, self.clock)
        if rejected:
            return rejected
        return plain_reply(200, args.get("echostr") or "")

    def _passive(self, args: Mapping[str, str], message: BaseMessage, text: str) -> WebReply:
        return passive_reply(self._crypto, args, message, text, self.clock)

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
        rejected = check_request(self.config, args, self.clock)
        if rejected:
            return rejected
        decoded = decode_message(self._crypto, args, body)
        if isinstance(decoded, WebReply):
            return decoded
        message = decoded
        key = self._dedup_key(message, str(message._data.get("CreateTime", "")))
        try:
            admission = await self.nonces.admit(args, key)
        except SharedStoreUnavailable:
            # Scale profile, Redis down (logged by the store): nothing is accepted
            # that could not be refused when replayed; WeChat delivers it again later.
            return plain_reply(503, STORE_UNAVAILABLE)
        if admission is Admission.REPLAY:
            logger.warning("WeChat channel: refused a replayed signature with another message")
            return plain_reply(403, "this signature was used already")
        if admission is Admission.REPEAT:
            logger.info("WeChat channel: a request came again with its signature; no turn")
            return plain_reply(200, SUCCESS)
        kind, text = self.user_text(message)
        if kind == "silent":
            return plain_reply(200, SUCCESS)
        if kind == "unsupported":
            reply = await self.unsupported_text()
            return self._passive(args, message, reply) if reply else plain_reply(200, SUCCESS)
        try:
            if not await self.store.set(key, _PENDING, self.config.dedup_ttl, only_new=True):
                return await self._answer_retry(args, message, key, deadline)
        except SharedStoreUnavailable:
            return plain_reply(503, STORE_UNAVAILABLE)
        await self._record_last_message(str(message.source))
        return await self._answer_first(args, message, key, text, deadline)

    async def _record_last_message(self, openid: str) -> None:
        """When the user last wrote: reminders use the customer-service API within 48 hours."""
        try:
            await self.store.set(
                last_message_key(self.config.app_id, openid),
                f"{self.clock():.3f}",
                CUSTOMER_SERVICE_SECONDS,
            )
        except SharedStoreUnavailable as error:
            logger.warning("WeChat channel: the time of a message is not kept: %s", error)

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
                return plain_reply(200, SUCCESS)
            if value != _PENDING:
                try:
                    reply = json.loads(value).get("reply")
                except (ValueError, AttributeError):
                    reply = None
                if isinstance(reply, str) and reply:
                    return self._passive(args, message, reply)
                return plain_reply(200, SUCCESS)
            if loop.time() >= deadline:
                return plain_reply(200, SUCCESS)
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
            return plain_reply(200, SUCCESS)
        except Exception:  # noqa: BLE001 - the assistant failed; WeChat must not retry it
            logger.exception("WeChat channel: the turn of %s failed", sender_id(openid))
            await self._record(key, json.dumps({"state": "done"}))
            return plain_reply(200, SUCCESS)
        texts = [t for t in (render_message(m) for m in messages) if t]
        passive, rest = self.passive_and_rest(texts)
        record = {"state": "done", "reply": passive}
        await self._record(key, json.dumps(record, ensure_ascii=False))
        await self.sender.remember_buttons(openid, messages)
        if rest:
            self._keep(asyncio.create_task(self._send_quietly(openid, rest)))
        return self._passive(args, message, passive) if passive else plain_reply(200, SUCCESS)

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
        scripts = [m["script"] for m in collector.messages if isinstance(m.get("script"), str)]
        if scripts:
            await self._record_script(openid, scripts[-1])
        return collector.messages

    async def _record_script(self, openid: str, script: str) -> None:
        """The script the user was answered in: reminders are written in it too."""
        try:
            await self.store.set(script_key(self.config.app_id, openid), script, SCRIPT_SECONDS)
        except SharedStoreUnavailable as error:
            logger.warning("WeChat channel: the script of a user is not kept: %s", error)

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
