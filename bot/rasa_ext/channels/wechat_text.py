"""Turning the assistant's messages into WeChat text, and numbered replies back into buttons.

WeChat official accounts show plain text only: buttons become numbered lines
("回复 1 选择「方案1」"), a reply such as "1", "１" or "选1" picks the button
with that number, and a text message may carry at most 2048 bytes of UTF-8.
The numbered lines are in the script the message was converted to (its
`script`, `bot.rasa_ext.reply_script`); "選1", "回覆 2" and "第二個" pick too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from bot.domain.script import convert, to_simplified

#: The most a WeChat text message (passive reply or customer-service message) may carry.
MAX_TEXT_BYTES = 2048

_CHINESE_DIGITS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CHOICE = re.compile(
    r"^(?:回复|选择|选|第|方案)?\s*([0-9]{1,2}|[一二两三四五六七八九])\s*(?:个|号|项|条)?$"
)
_TRAILING_PUNCTUATION = " \t\r\n。.!！,，~～"


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def button_lines(buttons: Iterable[dict[str, Any]], script: str | None = None) -> list[str]:
    """The numbered lines that stand for the buttons of one message, in `script`."""
    reply, pick = convert("回复", script), convert("选择", script)
    return [
        f"{reply} {number} {pick}「{button.get('title') or button.get('payload') or number}」"
        for number, button in enumerate(buttons, start=1)
    ]


def render_message(message: dict[str, Any]) -> str:
    """One message of the assistant (as a `CollectingOutputChannel` keeps it) as text."""
    lines = []
    if message.get("text"):
        lines.append(str(message["text"]).strip())
    if message.get("image"):
        lines.append(str(message["image"]))
    if message.get("attachment"):
        lines.append(str(message["attachment"]))
    script = message.get("script")
    lines += button_lines(message.get("buttons") or [], script if isinstance(script, str) else None)
    return "\n".join(line for line in lines if line)


def last_buttons(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The buttons the user can answer by number after these messages (the last ones shown)."""
    found: list[dict[str, Any]] = []
    for message in messages:
        if message.get("buttons"):
            found = [
                {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                for b in message["buttons"]
                if b.get("payload")
            ]
    return found


def parse_choice(text: str) -> int | None:
    """The button number a reply such as "1", "１", "选1" or "第二个" picks, if it is one."""
    normalized = to_simplified(unicodedata.normalize("NFKC", text)).strip(_TRAILING_PUNCTUATION)
    match = _CHOICE.match(normalized)
    if not match:
        return None
    number = match.group(1)
    return _CHINESE_DIGITS[number] if number in _CHINESE_DIGITS else int(number)


def choose(text: str, buttons: list[dict[str, Any]]) -> str | None:
    """The payload of the button a numbered reply picks; None when it picks none."""
    number = parse_choice(text)
    if number is None or not 1 <= number <= len(buttons):
        return None
    payload = buttons[number - 1].get("payload")
    return str(payload) if payload else None


def _cut(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` bytes of UTF-8."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """`text` in parts of at most `limit` bytes, split at line breaks where possible."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if utf8_size(current + line) <= limit:
            current += line
            continue
        if current.strip():
            parts.append(current)
        current = ""
        while utf8_size(line) > limit:
            head = _cut(line, limit)
            parts.append(head)
            line = line[len(head) :]
        current = line
    if current.strip():
        parts.append(current)
    return [part.strip("\n") for part in parts if part.strip()]


def join_messages(texts: Iterable[str]) -> str:
    """Several messages of one turn as one passive reply: separated by blank lines."""
    return "\n\n".join(text for text in texts if text)
