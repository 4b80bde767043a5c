"""What every request of the WeChat channel passes before its message is read.

Every request must carry a valid signature with a timestamp (plain digits)
at most `max_clock_skew` seconds off, in the past or the future, or it gets
403; that a `POST`'s signature is used only once is `wechat_replay`'s part. A
`POST` body over 64 KB gets 413; XML with a DTD or otherwise malformed gets
400. In safe mode (an AES key is set) the message must be encrypted and is
decrypted here, and the passive reply is encrypted in turn. The answers are
`WebReply`s, independent of the web framework.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.utils import check_signature

from bot.rasa_ext.channels.wechat_config import WeChatConfig
from bot.rasa_ext.channels.wechat_xml import (
    MAX_BODY_BYTES,
    UnsafeOrInvalidXml,
    parse_xml,
    text_reply,
    to_message,
)

#: A timestamp as WeChat writes it: seconds since 1970, ASCII digits only.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


@dataclass
class WebReply:
    """An HTTP answer, independent of the web framework."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def plain_reply(status: int, text: str) -> WebReply:
    return WebReply(status, text)


def parse_timestamp(text: str) -> int | None:
    """The seconds of a `timestamp` argument; None unless it is plain digits.

    `int()` alone would also take " 17…", "+17…" or "1_7…", which WeChat never sends.
    """
    return int(text) if _TIMESTAMP.fullmatch(text) else None


def safe_mode_crypto(config: WeChatConfig) -> WeChatCrypto | None:
    """The cipher of safe mode, or None in plain mode (or when the channel is disabled)."""
    return (
        WeChatCrypto(config.token, config.aes_key, config.app_id)
        if config.safe_mode and config.problem() is None
        else None
    )


def check_request(
    config: WeChatConfig, args: Mapping[str, str], clock: Callable[[], float]
) -> WebReply | None:
    """Why the request is refused (503 when not configured, 403), or None to go on."""
    problem = config.problem()
    if problem:
        return plain_reply(503, problem)
    signature = args.get("signature") or ""
    timestamp = args.get("timestamp") or ""
    nonce = args.get("nonce") or ""
    if not (signature and timestamp and nonce):
        return plain_reply(403, "missing signature, timestamp or nonce")
    try:
        check_signature(config.token, signature, timestamp, nonce)
    except InvalidSignatureException:
        return plain_reply(403, "invalid signature")
    stamp = parse_timestamp(timestamp)
    if stamp is None:
        return plain_reply(403, "invalid timestamp")
    if abs(clock() - stamp) > config.max_clock_skew:
        return plain_reply(403, "the timestamp is too far from now")
    return None


def decode_message(
    crypto: WeChatCrypto | None, args: Mapping[str, str], body: bytes
) -> BaseMessage | WebReply:
    """The message of a `POST` body (decrypted in safe mode), or why it is refused."""
    if len(body) > MAX_BODY_BYTES:
        return plain_reply(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        fields = parse_xml(body)
    except UnsafeOrInvalidXml as error:
        return plain_reply(400, str(error))
    if crypto is not None:
        encrypted = fields.get("Encrypt")
        msg_signature = args.get("msg_signature") or ""
        if not isinstance(encrypted, str) or not encrypted:
            return plain_reply(400, "safe mode: the message must be encrypted")
        if not msg_signature:
            return plain_reply(403, "safe mode: missing msg_signature")
        try:
            plain = crypto.decrypt_message(
                {"Encrypt": encrypted}, msg_signature, args["timestamp"], args["nonce"]
            )
        except InvalidSignatureException:
            return plain_reply(403, "invalid msg_signature")
        except Exception:  # noqa: BLE001 - wechatpy raises many kinds for bad ciphertext
            return plain_reply(400, "the message cannot be decrypted")
        try:
            fields = parse_xml(plain)
        except UnsafeOrInvalidXml as error:
            return plain_reply(400, str(error))
    try:
        return to_message(fields)
    except UnsafeOrInvalidXml as error:
        return plain_reply(400, str(error))


def passive_reply(
    crypto: WeChatCrypto | None,
    args: Mapping[str, str],
    message: BaseMessage,
    text: str,
    clock: Callable[[], float],
) -> WebReply:
    """`text` as the passive reply to `message` (encrypted in safe mode)."""
    xml = text_reply(message, text)
    if crypto is not None:
        xml = crypto.encrypt_message(xml, args["nonce"], str(int(clock())))
    return WebReply(200, xml, "application/xml; charset=utf-8")
