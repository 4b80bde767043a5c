"""What the WeChat channel sends: customer-service messages, and the buttons they showed.

WeChat shows plain text only, so the buttons of a message become numbered lines
(`bot.rasa_ext.channels.wechat_text`) and are kept in the shared store for a
day, so that a numbered reply can pick one. Answers that miss the passive reply
and staff replies during a handoff (`WeChatOutput`) go out through the
customer-service message API, in order per user.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from rasa.core.channels.channel import OutputChannel

from bot.rasa_ext.channels.wechat_api import WeChatApi
from bot.rasa_ext.channels.wechat_config import (
    CHANNEL_NAME,
    LOGGER_NAME,
    WeChatConfig,
    openid_of,
    sender_id,
)
from bot.rasa_ext.channels.wechat_store import SharedStore, SharedStoreUnavailable
from bot.rasa_ext.channels.wechat_text import last_buttons, render_message, split_text

logger = logging.getLogger(LOGGER_NAME)


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
        message = {"text": text, "buttons": buttons, "script": kwargs.get("script")}
        await self.sender.remember_buttons(openid, [message])
        await self.sender.send(openid, [render_message(message)])

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        logger.debug("WeChat channel: custom JSON is not shown to WeChat users")
