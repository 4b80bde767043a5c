"""Scripted multi-turn conversations played against the running stack.

A conversation file (`tests/conversations/*.yml`) looks like::

    name: 逾期对征信的影响
    turns:
      - user: 逾期会影响征信吗
        contains: [征信]          # every string must appear in this turn's replies
        any_of: [五年, 5年]        # at least one must appear
        not_contains: [坐牢]      # none may appear

Each turn's replies are joined into one text; an empty list of replies fails
the turn. A turn with `no_reply: true` passes only if the bot stays silent (a
person holds the conversation).

The replies must be in the script the debtor's messages so far call for
(`bot.domain.script`): in a Simplified conversation no reply may hold a
Traditional-only character, in a Traditional one no Simplified-only character
(expected strings are written in the script the debtor gets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.domain.conduct import conduct_problems
from bot.domain.script import SIMPLIFIED, follow, marks, to_simplified

CONVERSATIONS_DIR = Path(__file__).resolve().parent.parent / "conversations"

#: Never acceptable in any reply of the assistant: errors. Threats, insults and
#: the like are `bot.domain.conduct`'s to find, in every reply of every test.
FORBIDDEN_EVERYWHERE = ["Traceback", "Exception"]


@dataclass
class Turn:
    user: str
    contains: list[str] = field(default_factory=list)
    any_of: list[str] = field(default_factory=list)
    not_contains: list[str] = field(default_factory=list)
    no_reply: bool = False


@dataclass
class Conversation:
    name: str
    path: Path
    turns: list[Turn]


def load(path: Path) -> Conversation:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    turns = [Turn(**turn) for turn in raw["turns"]]
    return Conversation(name=raw.get("name", path.stem), path=path, turns=turns)


def load_all(directory: Path = CONVERSATIONS_DIR) -> list[Conversation]:
    return [load(path) for path in sorted(directory.glob("*.yml"))]


def reply_text(replies: list[dict[str, Any]]) -> str:
    """All replies of one turn as text, buttons included."""
    parts = []
    for reply in replies:
        if reply.get("text"):
            parts.append(reply["text"])
        parts.extend(f"[{b.get('title', '')}]" for b in reply.get("buttons", []))
    return "\n".join(parts)


def script_after(script: str, turn: Turn) -> str:
    """The conversation's script after the debtor's message of `turn` (payloads are neutral)."""
    return script if turn.user.startswith("/") else follow(script, turn.user)


def script_problems(text: str, script: str) -> list[str]:
    """What of `text` is not in `script`, the script the debtor reads."""
    traditional, simplified = marks(text)
    if script == SIMPLIFIED and traditional:
        return [f"{traditional} Traditional characters in a Simplified conversation"]
    if script != SIMPLIFIED and simplified:
        return [f"{simplified} Simplified characters in a {script} conversation"]
    return []


def check_turn(turn: Turn, replies: list[dict[str, Any]], script: str | None = None) -> list[str]:
    """The problems with `replies` as an answer to `turn` (empty when it passes).

    With `script`, the replies must be written in it.
    """
    text = reply_text(replies)
    problems = []
    if script is not None:
        problems += script_problems(text, script)
    if turn.no_reply and replies:
        problems.append("the bot replied although a person holds the conversation")
    if not replies and not turn.no_reply:
        problems.append("the bot did not reply")
    problems += [f"missing {s!r}" for s in turn.contains if s not in text]
    if turn.any_of and not any(s in text for s in turn.any_of):
        problems.append(f"none of {turn.any_of!r}")
    problems += [f"must not contain {s!r}" for s in turn.not_contains if s in text]
    problems += [f"forbidden {s!r}" for s in FORBIDDEN_EVERYWHERE if re.search(s, text)]
    problems += conduct_problems(text)
    return problems


def format_failure(conversation: Conversation, index: int, problems: list[str], text: str) -> str:
    turn = conversation.turns[index]
    return (
        f"{conversation.path.name}, turn {index + 1}\n"
        f"  user:     {turn.user!r}\n"
        f"  bot:      {text!r}\n" + "".join(f"  problem:  {p}\n" for p in problems)
    )


#: The reply to a message the assistant could not place.
NOT_UNDERSTOOD = "我没有理解您的意思"


async def play(client: Any, path: Path, *, understood: bool = True) -> None:
    """Play one conversation file as one debtor; fail with every turn that went wrong.

    With `understood`, a reply that falls back to "not understood" fails the turn.
    """
    conversation = load(path)
    failures = []
    script = SIMPLIFIED
    for index, turn in enumerate(conversation.turns):
        replies = await client.say(turn.user)
        script = script_after(script, turn)
        problems = check_turn(turn, replies, script)
        if understood and NOT_UNDERSTOOD in to_simplified(reply_text(replies)):
            problems.append(f"the assistant fell back to {NOT_UNDERSTOOD!r}")
        if problems:
            failures.append(format_failure(conversation, index, problems, reply_text(replies)))
    assert not failures, "\n" + "\n".join(failures)
