"""The debtors' web chat page (H5), served by the Rasa server itself.

`WebChatPage` is an input channel only in name: its blueprint serves the
files of `bot/webchat/public/` at `/webhooks/webchat/` (the page at
`/webhooks/webchat/`), so that the page and Rasa's `socketio` channel share
one origin. The page's messages travel over that `socketio` channel
(`bot.rasa_ext.channels.socketio`); this channel accepts none itself.

`POST /webhooks/webchat/staff_messages` `{"session_id": <token>, "after": <timestamp>}`
gives the page the staff replies of its conversation that it missed while
closed or offline (`bot.rasa_ext.channels.staff_replies`). The token travels
in the body, never in a URL; an expired or forged one is answered with 401.

The third-party browser files (`public/vendor/`) are copied from npm packages
by `npm ci --prefix bot/webchat` (its `postinstall` step); nothing is loaded
from a CDN.

Only regular files inside the folder are served: a path with `..`, `.` or
hidden segments, a backslash, a NUL byte, or one that resolves (through a
symbolic link, say) outside the folder is answered with 404, and only known
file types are served, each with its content type.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.rasa_ext.channels.staff_replies import (
    InvalidRequest,
    after_timestamp,
    json_object,
    staff_replies,
)
from bot.rasa_ext.channels.webchat_session import session_ids

logger = logging.getLogger(__name__)

#: The served folder (`bot/webchat/public`).
PUBLIC = Path(__file__).resolve().parents[2] / "webchat" / "public"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

#: The page itself is revalidated on every load, so that a new version of the
#: scripts it names is picked up at once; the other files may be kept an hour.
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=3600"

#: No script from anywhere but this server, no inline script; the chat
#: component styles its shadow DOM with inline styles; socket.io connects back
#: to this server (`'self'` covers ws: and wss: to the same host).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)

MISSING_BUILD = (
    "<!doctype html><meta charset=utf-8><title>网页聊天暂不可用</title>"
    "<p>网页聊天的前端文件尚未安装：请运行 <code>make install</code>"
    "（或 <code>npm ci --prefix bot/webchat</code>）。</p>"
)


#: A staff-message request is a token and a timestamp.
MAX_REQUEST_BYTES = 1024


def resolve(root: Path, path: str) -> Path | None:
    """The file under `root` that the URL path `path` names, or None.

    `path` is taken as sent (it is unquoted once more, so `%2e%2e` is `..`).
    Returns None for anything but a regular file of a served type inside
    `root`.
    """
    path = unquote(path)
    if "\\" in path or "\x00" in path or path.startswith("/"):
        return None
    parts = [part for part in path.split("/") if part]
    if not parts or any(part.startswith(".") for part in parts):
        return None
    root = root.resolve()
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    if real.suffix.lower() not in CONTENT_TYPES:
        return None
    return real


def _etag(file: Path) -> str:
    stat = file.stat()
    digest = hashlib.sha256(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def _headers(cache_control: str) -> dict[str, str]:
    return {
        "Cache-Control": cache_control,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }


async def serve(request: Request, root: Path, path: str) -> HTTPResponse:
    """Answer a GET or HEAD for `path` under `root`."""
    file = resolve(root, path)
    if file is None:
        if path == "index.html" and not (root / "vendor").is_dir():
            return response.html(MISSING_BUILD, status=503, headers=_headers("no-store"))
        return response.text("Not Found", status=404, headers=_headers("no-store"))
    headers = _headers(PAGE_CACHE if file.suffix == ".html" else ASSET_CACHE)
    etag = _etag(file)
    headers["ETag"] = etag
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return HTTPResponse(status=304, headers=headers)
    content_type = CONTENT_TYPES[file.suffix.lower()]
    if request.method == "HEAD":
        headers["Content-Length"] = str(file.stat().st_size)
        return HTTPResponse(status=200, headers=headers, content_type=content_type)
    return HTTPResponse(file.read_bytes(), status=200, headers=headers, content_type=content_type)


async def missed_staff_replies(request: Request) -> HTTPResponse:
    """The staff replies of the conversation of the token in the body (POST)."""
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if len(request.body) > MAX_REQUEST_BYTES:
        raise InvalidRequest("the body is too large")
    body = json_object(request)
    session = session_ids().read(body.get("session_id"))
    if session is None:
        return response.json(
            {"error": "the session has expired or is unknown"}, status=401, headers=headers
        )
    after = after_timestamp(body.get("after"))
    tracker_store = request.app.ctx.agent.tracker_store
    replies = await staff_replies(tracker_store, session.conversation_id, after)
    return response.json(replies, headers=headers)


class WebChatPage(InputChannel):
    """Serves the web chat page at `/webhooks/webchat/`; accepts no messages."""

    @classmethod
    def name(cls) -> str:
        return "webchat"

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root else PUBLIC

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls((credentials or {}).get("root"))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        page = Blueprint("webchat_page", __name__)
        root = self.root

        @page.route("", methods=["GET", "HEAD"], strict_slashes=True)
        async def without_slash(request: Request) -> HTTPResponse:
            # The page names its files relative to its own URL: it needs the slash.
            # A relative Location keeps working behind a proxy that adds a prefix.
            return response.redirect(request.path.rsplit("/", 1)[-1] + "/", status=301)

        @page.route("/", methods=["GET", "HEAD"], strict_slashes=True)
        async def index(request: Request) -> HTTPResponse:
            return await serve(request, root, "index.html")

        @page.route("/staff_messages", methods=["POST"])
        async def staff_messages(request: Request) -> HTTPResponse:
            return await missed_staff_replies(request)

        @page.route("/<path:path>", methods=["GET", "HEAD"])
        async def static(request: Request, path: str) -> HTTPResponse:
            return await serve(request, root, path)

        return page
