"""What every handler and middleware of the console shares.

The request's signed-in staff member, session and case id; form and JSON input;
and the three ways to answer: a page, a redirect, or a `Problem` that the
`errors` middleware turns into an error page or a JSON error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy

from bot.console import labels
from bot.console.sessions import Session
from bot.console.texts import NOTICES
from bot.store.models import StaffMember


class Problem(Exception):
    """An error to show: a JSON `{"error": message}` for the API, an error page otherwise."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_api(request: web.Request) -> bool:
    """Whether the request is one of the JSON API's."""
    return request.path == "/api" or request.path.startswith("/api/")


def staff_of(request: web.Request) -> StaffMember:
    """The signed-in staff member (routes past the `authenticate` middleware have one)."""
    member = request.get("staff")
    assert isinstance(member, StaffMember), "route needs a signed-in staff member"
    return member


def session_of(request: web.Request) -> Session | None:
    """The request's session, if its cookie is valid."""
    session = request.get("session")
    return session if isinstance(session, Session) else None


def is_supervisor(member: StaffMember) -> bool:
    """Whether `member` sees and may do everything."""
    return member.role == "supervisor"


def require_supervisor(request: web.Request) -> StaffMember:
    """The signed-in supervisor; 403 for anyone else."""
    member = staff_of(request)
    if not is_supervisor(member):
        raise Problem(403, "仅主管可以访问")
    return member


def case_id_of(request: web.Request) -> int:
    """The id in the route's path (a case's or a referral's)."""
    return int(request.match_info["id"])


def form_text(form: MultiDictProxy[Any], name: str) -> str | None:
    """A text field of a form, or None (absent, or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 400 for anything else."""
    try:
        data = await request.json()
    except ValueError as error:  # also bad UTF-8
        raise Problem(400, "请求内容须为 JSON") from error
    if not isinstance(data, dict):
        raise Problem(400, "请求内容须为 JSON 对象")
    return data


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
) -> web.Response:
    """A page: `template` with `context`, the staff member, CSRF token and `?notice=`."""
    session = session or session_of(request)
    member = request.get("staff")
    code = request.query.get("notice", "")
    notice = NOTICES.get(code)
    base = {
        "staff": member,
        "role_label": labels.label(labels.ROLES, member.role) if member else "",
        "csrf_token": session.csrf_token if session else "",
        "notice": {"kind": notice[0], "text": notice[1]} if notice else None,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def see_other(location: str) -> web.Response:
    """A 303 redirect to `location`."""
    return web.Response(status=303, headers={"Location": location})
