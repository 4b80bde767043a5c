"""Every message the assistant sends, in the script the debtor reads.

The one point every bot message passes, whatever made it (a response, text or
buttons an action dispatched, a custom payload, a staff reply appended through
the HTTP API) and on every channel, is Rasa's
`MessageProcessor._send_bot_messages`. `install()` wraps it: before a
`BotUttered` is sent, its text, button titles (not payloads), quick replies,
custom payload and elements, and a staff reply's staff name, are converted
(`bot.domain.script.convert`), and its metadata records the script (`script`).
The event is converted in place, so the tracker, the transcript the staff
console shows and the staff replies a client polls for hold what the debtor
read.

The conversation's script is derived from the tracker: the script recorded on
the latest bot message, followed through the debtor's messages since
(`bot.domain.script.preference`). No slot is set, so the dialogue policies see
nothing of it. Intent payloads ("/affirm", a button's payload) are neutral.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rasa.core.channels.channel import OutputChannel
from rasa.core.processor import MessageProcessor
from rasa.shared.core.events import BotUttered, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.domain.script import (
    SCRIPTS,
    SIMPLIFIED,
    convert,
    convert_buttons,
    convert_data,
    is_traditional,
    preference,
)

#: The metadata key (on bot events, and in the messages channels receive) naming the script.
SCRIPT_KEY = "script"

_ORIGINAL = MessageProcessor._send_bot_messages


def conversation_script(events: Iterable[Event]) -> str:
    """The script of the conversation whose events (oldest first) are `events`."""
    since: list[str] = []
    current = SIMPLIFIED
    for event in reversed(list(events)):
        if isinstance(event, UserUttered):
            text = event.text or ""
            if not text.startswith("/"):
                since.append(text)
        elif isinstance(event, BotUttered):
            marked = (event.metadata or {}).get(SCRIPT_KEY)
            if marked in SCRIPTS:
                current = str(marked)
                break
    return preference(reversed(since), current)


def render(event: BotUttered, script: str) -> None:
    """Convert `event` for a debtor reading `script` (once) and record the script."""
    if SCRIPT_KEY in (event.metadata or {}):
        return
    if is_traditional(script):
        if event.text:
            event.text = convert(event.text, script)
        data = dict(event.data or {})
        for key in ("buttons", "quick_replies"):
            if isinstance(data.get(key), list):
                data[key] = convert_buttons([b for b in data[key] if isinstance(b, dict)], script)
        for key in ("custom", "elements"):
            if data.get(key):
                data[key] = convert_data(data[key], script)
        event.data = data
    metadata = dict(event.metadata or {})
    if is_traditional(script) and isinstance(metadata.get("staff"), str):
        # The name the page shows above a staff reply ("人工客服 李專員").
        metadata["staff"] = convert(metadata["staff"], script)
    event.metadata = {**metadata, SCRIPT_KEY: script}


async def send_bot_messages(
    events: list[Event], tracker: DialogueStateTracker, output_channel: OutputChannel
) -> None:
    """Rasa's `_send_bot_messages`, each message first converted to the conversation's script."""
    bot_events = [e for e in events if isinstance(e, BotUttered)]
    if bot_events:
        script = conversation_script(tracker.events)
        for event in bot_events:
            render(event, script)
    await _ORIGINAL(events, tracker, output_channel)


def install() -> None:
    """Convert every bot message from now on (idempotent)."""
    MessageProcessor._send_bot_messages = staticmethod(send_bot_messages)  # type: ignore[method-assign,assignment]


def installed() -> bool:
    return MessageProcessor.__dict__["_send_bot_messages"].__func__ is send_bot_messages  # type: ignore[union-attr]


def script_of(message: dict[str, Any]) -> str:
    """The script a message a channel received was converted to (Simplified if none)."""
    script = message.get(SCRIPT_KEY)
    return str(script) if script in SCRIPTS else SIMPLIFIED
