"""A terminal chat with the running assistant over its REST channel (`make shell`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

from bot.rasa_ext.channels.rest_auth import signed_json
from bot.tools.stack import rest_integrators

PATH = "/webhooks/rest/webhook"


def send(url: str, sender: str, message: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Send one message to the REST channel and return the bot's replies."""
    # Signed as this machine's integrator, as a cluster requires (a stack ignores it).
    signed = signed_json({"sender": sender, "message": message}, PATH, rest_integrators())
    request = urllib.request.Request(  # noqa: S310
        f"{url}{PATH}", data=signed["data"], headers=signed["headers"]
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read().decode() or "[]")


def render(reply: dict[str, Any]) -> str:
    """One reply as terminal text, buttons as numbered lines."""
    lines = [reply.get("text", "")] if reply.get("text") else []
    for number, button in enumerate(reply.get("buttons", []), start=1):
        lines.append(f"  {number}. {button.get('title', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat with the running assistant.")
    parser.add_argument("--url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    parser.add_argument("--sender", default=f"shell-{uuid.uuid4().hex}")
    args = parser.parse_args(argv)
    print(
        f"Connected to {args.url} as {args.sender}. Type a message and press Enter; /quit leaves."
    )
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if message.strip() == "/quit":
            return 0
        try:
            replies = send(args.url, args.sender, message)
        except (urllib.error.URLError, ConnectionError) as error:
            print(
                f"Cannot reach the assistant ({error}); start it with 'make run'.", file=sys.stderr
            )
            return 1
        for reply in replies:
            print(f"bot> {render(reply)}")


if __name__ == "__main__":
    sys.exit(main())
