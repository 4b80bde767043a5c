"""The console's middlewares: errors, sign-in and CSRF; and the security headers.

Every route but `/login`, `/health` and the static files needs a signed-in,
active staff member; every POST needs the session's CSRF token (form field
`csrf_token` or header `X-CSRF-Token`). The machine routes (`MACHINE_PATHS`: the
payment push) take neither: their handlers check the caller's signature.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.console.handling import Problem, form_text, is_api, render
from bot.console.sessions import Session
from bot.console.state import CONSOLE
from bot.console.texts import HTTP_MESSAGES
from bot.store import staff as staff_accounts
from bot.store.models import StaffMember

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PUBLIC_PATHS = frozenset({"/login", "/health"})
#: Routes for other systems: no staff session or CSRF token, the handler checks a signature.
MACHINE_PATHS = frozenset({"/api/payments"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_REFUSED = "安全校验失败，请刷新页面后重试"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(request: web.Request, status: int, message: str) -> web.Response:
    if is_api(request) or request.path == "/health":
        return web.json_response({"error": message}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as JSON for the API and as a page otherwise; nothing internal leaks."""
    try:
        return await handler(request)
    except Problem as problem:
        return _error_response(request, problem.status, problem.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(request, error.status, HTTP_MESSAGES.get(error.status, error.reason))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return _error_response(request, 500, HTTP_MESSAGES[500])


async def _check_csrf(request: web.Request, session: Session | None) -> None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, HTTP_MESSAGES[413])
    token = request.headers.get("X-CSRF-Token")
    if token is None and not is_api(request):
        try:
            form = await request.post()
        except (ValueError, LookupError):  # not text in its charset, or an unknown charset
            raise Problem(403, _CSRF_REFUSED) from None
        token = form_text(form, "csrf_token")
    if session is None or not session.csrf_matches(token):
        raise Problem(403, _CSRF_REFUSED)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session and its staff member; refuse anonymous requests and bad CSRF."""
    if request.path in MACHINE_PATHS:
        request["session"] = request["staff"] = None
        return await handler(request)
    console = request.app[CONSOLE]
    session = console.sessions.load(request)
    if session is not None and await staff_accounts.is_revoked(console.db, session.session_id):
        session = None
    member: StaffMember | None = None
    if session is not None and session.staff_id is not None:
        found = await staff_accounts.get_staff(console.db, session.staff_id)
        if found is not None and found.active:
            member = found
    request["session"] = session
    request["staff"] = member
    public = request.path in PUBLIC_PATHS or request.path.startswith("/static/")
    if member is None and not public:
        if is_api(request):
            raise Problem(401, "请先登录")
        raise web.HTTPFound("/login")
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, session)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The headers every response gets (an `on_response_prepare` signal handler)."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
