"""Settings of the WeChat channel, and the conversation ids of WeChat users.

See `bot.rasa_ext.channels.wechat` for what each setting does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.rasa_ext.channels.wechat_api import DEFAULT_API_BASE
from bot.rasa_ext.channels.wechat_store import DEFAULT_REDIS_URL

#: Every part of the channel logs under the name of its entry module.
LOGGER_NAME = "bot.rasa_ext.channels.wechat"

CHANNEL_NAME = "wechat"
SENDER_PREFIX = "wechat:"


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


#: WeChat lets the customer-service API answer a user this long after their last message.
CUSTOMER_SERVICE_SECONDS = 48 * 3600.0


#: How long the script a user reads is kept for messages the user did not ask for.
SCRIPT_SECONDS = 90 * 24 * 3600.0


def script_key(app_id: str, openid: str) -> str:
    """The shared-store key holding the script `openid` was last answered in (reminders)."""
    return f"wechat:{app_id}:script:{openid}"


def last_message_key(app_id: str, openid: str) -> str:
    """The shared-store key holding when `openid` last wrote (kept for the 48-hour window)."""
    return f"wechat:{app_id}:last_message:{openid}"


@dataclass(frozen=True)
class WeChatConfig:
    """Settings of the channel; see the documentation of `bot.rasa_ext.channels.wechat`."""

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
    #: The template message of reminders outside the 48-hour window
    #: (`WECHAT_REMINDER_TEMPLATE_ID`).
    reminder_template_id: str = ""

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
            reminder_template_id=pick("WECHAT_REMINDER_TEMPLATE_ID", "reminder_template_id"),
        )

    @property
    def safe_mode(self) -> bool:
        return bool(self.aes_key)

    def scale_problem(self) -> str | None:
        """Why the scale profile refuses this configuration (plain mode), or None."""
        if self.token and not self.aes_key:
            return (
                "the WeChat channel needs safe mode: set WECHAT_AES_KEY (the account's "
                "EncodingAESKey, 43 characters) and WECHAT_APP_ID, or unset WECHAT_TOKEN; "
                "in plain mode the signature does not cover the message"
            )
        return None

    def problem(self) -> str | None:
        """Why the channel cannot serve requests, or None when it can."""
        if not self.token:
            return "the WeChat channel is not configured: set WECHAT_TOKEN"
        if self.aes_key and len(self.aes_key) != 43:
            return "WECHAT_AES_KEY must be 43 characters (safe mode)"
        if self.aes_key and not self.app_id:
            return "safe mode (WECHAT_AES_KEY) needs WECHAT_APP_ID"
        return None
