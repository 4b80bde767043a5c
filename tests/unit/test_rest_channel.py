"""The REST channel: checked input, and an input channel a client cannot choose.

The blueprint's handlers are called with a stand-in for Sanic's request (the
real server is covered by the end-to-end tests).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from sanic.response import HTTPResponse

from bot.rasa_ext.channels.rest import CheckedRestInput, InvalidRequest
from bot.rasa_ext.channels.rest_auth import MemoryNonces, RestAuthenticator

Handler = Callable[[Any], Awaitable[Any]]


def _handlers(received: list[UserMessage]) -> dict[str, Handler]:
    async def on_new_message(message: UserMessage) -> None:
        received.append(message)

    # No integrators: the development profile's open channel.
    blueprint = CheckedRestInput(RestAuthenticator({}, MemoryNonces())).blueprint(on_new_message)
    return {route.uri: route.handler for route in blueprint._future_routes}


def _request(body: Any = None, args: dict[str, str] | None = None) -> Any:
    tracker_store = SimpleNamespace(retrieve=_no_tracker)
    return SimpleNamespace(
        json=body,
        args=args or {},
        app=SimpleNamespace(
            ctx=SimpleNamespace(agent=SimpleNamespace(tracker_store=tracker_store))
        ),
    )


async def _no_tracker(sender_id: str) -> None:
    return None


class StreamedResponse:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def write(self, data: str) -> None:
        self.lines.append(data)


async def test_the_input_channel_is_rest_whatever_the_body_says() -> None:
    received: list[UserMessage] = []
    receive = _handlers(received)["/webhook"]
    body = {
        "sender": "oPenId-of-somebody",
        "message": "你好",
        "input_channel": "wechat",
        "metadata": {"page": "test"},
    }
    answer = await receive(_request(body))
    assert isinstance(answer, HTTPResponse) and answer.status == 200
    streamed = await receive(_request(body, {"stream": "true"}))
    await streamed.streaming_fn(StreamedResponse())
    assert [(m.sender_id, m.text, m.input_channel, m.metadata) for m in received] == [
        ("oPenId-of-somebody", "你好", "rest", {"page": "test"}),
    ] * 2
    # Not even an empty name or another type lets the body's value through.
    for value in ("", None, 42, "socketio"):
        await receive(_request({**body, "input_channel": value}))
        assert received[-1].input_channel == "rest"


@pytest.mark.parametrize(
    "body",
    [
        {"sender": "wechat:oPenId", "message": "你好", "input_channel": "wechat"},
        {"sender": 42, "message": "你好"},
        {"sender": "someone", "message": ["not", "text"]},
        ["not", "an", "object"],
    ],
)
async def test_bad_requests_are_still_refused(body: Any) -> None:
    received: list[UserMessage] = []
    with pytest.raises(InvalidRequest):
        await _handlers(received)["/webhook"](_request(body))
    assert received == []


@pytest.mark.parametrize(
    "sender",
    [
        "webchat:0123456789abcdef0123456789abcdef",  # a web chat conversation id
        f"{'a' * 32}.{'b' * 32}",  # the earlier form of web chat ids
        "wechat:oPenId",
    ],
)
async def test_other_channels_conversations_cannot_be_read(sender: str) -> None:
    with pytest.raises(InvalidRequest, match="sender"):
        await _handlers([])["/staff_messages"](_request(args={"sender": sender}))


async def test_a_non_ascii_sender_is_no_500() -> None:
    staff_messages = _handlers([])["/staff_messages"]
    for sender in (f"{'0' * 32}.{'签' * 32}", f"{'签' * 32}.{'0' * 32}"):
        answer = await staff_messages(_request(args={"sender": sender}))
        assert answer.status == 200 and json.loads(answer.body) == []
