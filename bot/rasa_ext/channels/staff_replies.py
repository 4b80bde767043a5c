"""The staff replies of one conversation, for clients that poll for them.

While a negotiator holds a conversation, their replies cannot travel in the
answer to a REST request, and a web chat page may miss them while it is
closed or offline. Both ask for them (the REST channel's and the web chat
page's `staff_messages`) with the timestamp of the last one they have; only
staff messages are returned, the assistant's own replies having reached the
client already.
"""

from __future__ import annotations

import math
from typing import Any

from sanic.exceptions import SanicException
from sanic.request import Request


class InvalidRequest(SanicException):
    """A request a channel cannot answer as asked (HTTP 400)."""

    status_code = 400
    quiet = True


def json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object; `InvalidRequest` for anything else."""
    try:
        body = request.json
    except SanicException as error:
        raise InvalidRequest("the body must be a JSON object") from error
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def after_timestamp(value: object) -> float:
    """`after` as a finite number of seconds (0 when not given)."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRequest("'after' must be a timestamp in seconds")
    try:
        after = float(value)
    except ValueError:
        raise InvalidRequest("'after' must be a timestamp in seconds") from None
    if not math.isfinite(after):
        raise InvalidRequest("'after' must be a timestamp in seconds")
    return after


async def staff_replies(tracker_store: Any, sender_id: str, after: float) -> list[dict[str, Any]]:
    """The staff messages of conversation `sender_id` sent after `after`, oldest first."""
    tracker = await tracker_store.retrieve(sender_id)
    messages = []
    for event in tracker.events if tracker else []:
        metadata = getattr(event, "metadata", None) or {}
        if event.type_name == "bot" and "staff" in metadata and event.timestamp > after:
            message = {"text": event.text, "staff": metadata["staff"], "timestamp": event.timestamp}
            buttons = (getattr(event, "data", None) or {}).get("buttons")
            if buttons:  # a negotiator's offer: confirm and decline
                message["buttons"] = buttons
            messages.append(message)
    return messages
