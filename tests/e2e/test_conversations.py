"""Plays every scripted conversation in tests/conversations against the stack."""

from __future__ import annotations

import pytest

from bot.domain.script import SIMPLIFIED
from tests.support.conversations import (
    Conversation,
    check_turn,
    format_failure,
    load_all,
    reply_text,
    script_after,
)

pytestmark = [pytest.mark.e2e, pytest.mark.dialogue]

CONVERSATIONS = load_all()


def test_there_are_conversations_to_play() -> None:
    assert len(CONVERSATIONS) >= 10


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c.path.stem)
async def test_conversation(client, conversation: Conversation) -> None:
    failures = []
    script = SIMPLIFIED
    for index, turn in enumerate(conversation.turns):
        replies = await client.say(turn.user)
        script = script_after(script, turn)
        problems = check_turn(turn, replies, script)
        if problems:
            failures.append(format_failure(conversation, index, problems, reply_text(replies)))
    assert not failures, "\n" + "\n".join(failures)
