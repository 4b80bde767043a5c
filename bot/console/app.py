"""The staff console: negotiators take over conversations the assistant handed off.

An aiohttp application with server-rendered pages (Jinja2, autoescaped) and a
JSON API under `/api/` that mirrors them. Every route but `/login`, `/health`
and the static files needs a signed-in, active staff member; every POST needs
the session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`).

A negotiator sees waiting cases and the ones they hold; anything else answers
404, as if it did not exist. Supervisors see everything, closed cases and the
collections referrals included.

Staff replies and the resumption of the assistant after a case is closed go
through the Rasa HTTP API (`rasa_api`). A resumption that fails is retried in
the background every `resume_retry_seconds` for a day; the cases still waiting
are read from the database, so a restart of the console forgets none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import sqlalchemy as sa
from aiohttp import web
from multidict import MultiDictProxy

from bot.console import labels
from bot.console.rasa_api import RasaClient, RasaError
from bot.console.sessions import MAX_AGE_SECONDS, Session, SessionStore
from bot.store import audit, handoff
from bot.store import staff as staff_accounts
from bot.store import transcript as transcripts
from bot.store.engine import Database
from bot.store.handoff import CaseError, CaseView, ReferralView
from bot.store.models import HANDOFF_OUTCOMES, StaffMember, utcnow

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 64 * 1024
MAX_REPLY_CHARACTERS = 2000
MAX_NOTE_CHARACTERS = 2000
#: Closed cases listed on the supervisors' page, newest first.
CLOSED_LIST_LIMIT = 200
#: A resumption is retried for this long before the console gives up on it.
RESUME_GIVE_UP_SECONDS = 24 * 60 * 60
CASE_ID = r"{id:\d{1,9}}"
PUBLIC_PATHS = frozenset({"/login", "/health"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: What `?notice=` codes on a page say; anything else is ignored.
NOTICES = {
    "claim_lost": ("warning", "该案件已被其他同事认领。"),
    "closed": ("success", "案件已结束，对话已交还智能助手。"),
    "resume_pending": (
        "warning",
        "案件已结束，但未能通知智能助手恢复对话；系统会每 10 秒自动重试。",
    ),
    "acknowledged": ("success", "已确认接收该转交。"),
    "acknowledge_failed": ("warning", "该转交记录不存在或已处理。"),
    "signed_out": ("success", "您已退出登录。"),
}
_HTTP_MESSAGES = {
    400: "请求无效",
    401: "请先登录",
    403: "没有权限",
    404: "页面不存在",
    405: "不支持该请求方式",
    413: "请求内容过大（上限 64 KB）",
    500: "服务器内部错误",
}


class Problem(Exception):
    """An error to show: a JSON `{"error": message}` for the API, an error page otherwise."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Console:
    """The application's state."""

    db: Database
    rasa: RasaClient
    sessions: SessionStore
    resume_retry_seconds: float

    async def resume(self, case: CaseView) -> bool:
        """Tell Rasa to resume the case's conversation; False if that failed (retried later).

        Another console may be resuming it at the same moment (its close, or its
        retries): one at a time, and whoever comes second finds it done.
        """
        async with handoff.resuming(self.db, case.conversation_id):
            if not await handoff.needs_resume(self.db, case.conversation_id):
                return True
            try:
                await self.rasa.resume(case.conversation_id)
            except RasaError as error:
                logger.warning("resuming %s failed, will retry: %s", case.reference, error)
                return False
            await handoff.mark_resumed(self.db, case.conversation_id)
            return True

    async def retry_resumes(self) -> None:
        """Ask Rasa again to resume every recently closed case it has not resumed.

        Which cases still wait is in the database (`handoff_cases.resumed_at`,
        set once Rasa has run the resume action and delivered its reply), so a
        restart forgets nothing.
        """
        since = datetime.now(timezone.utc) - timedelta(seconds=RESUME_GIVE_UP_SECONDS)
        for case in await handoff.awaiting_resume(self.db, since):
            if await self.resume(case):
                logger.info("resumed %s", case.reference)


CONSOLE = web.AppKey("console", Console)
RETRY_TASK = web.AppKey("resume_retry_task", asyncio.Task)


# --- helpers -------------------------------------------------------------------------------


def _is_api(request: web.Request) -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _staff(request: web.Request) -> StaffMember:
    member = request.get("staff")
    assert isinstance(member, StaffMember), "route needs a signed-in staff member"
    return member


def _session(request: web.Request) -> Session | None:
    session = request.get("session")
    return session if isinstance(session, Session) else None


def _is_supervisor(member: StaffMember) -> bool:
    return member.role == "supervisor"


def _require_supervisor(request: web.Request) -> StaffMember:
    member = _staff(request)
    if not _is_supervisor(member):
        raise Problem(403, "仅主管可以访问")
    return member


def _may_read(member: StaffMember, case: CaseView) -> bool:
    if _is_supervisor(member):
        return True
    return case.status == "waiting" or (case.status == "claimed" and case.staff_id == member.id)


def _case_id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _form_text(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as error:  # also bad UTF-8
        raise Problem(400, "请求内容须为 JSON") from error
    if not isinstance(data, dict):
        raise Problem(400, "请求内容须为 JSON 对象")
    return data


def case_data(case: CaseView, member: StaffMember) -> dict[str, Any]:
    """A case as the API and the templates show it: its fields plus Chinese labels."""
    data = case.to_dict()
    waited = (utcnow() - case.created_at).total_seconds()
    data.update(
        reason_label=labels.label(labels.REASONS, case.reason),
        category_label=labels.optional_label(labels.COMPLAINT_CATEGORIES, case.category),
        status_label=labels.label(labels.STATUSES, case.status),
        outcome_label=labels.optional_label(labels.OUTCOMES, case.outcome),
        channel_label=labels.label(labels.CHANNELS, case.channel),
        waited_seconds=int(waited),
        waited=labels.duration(waited),
        created_label=labels.beijing_time(case.created_at),
        claimed_label=labels.beijing_time(case.claimed_at),
        closed_label=labels.beijing_time(case.closed_at),
        mine=case.staff_id == member.id,
    )
    return data


def referral_data(referral: ReferralView) -> dict[str, Any]:
    """A referral with Chinese labels."""
    data = referral.to_dict()
    data.update(
        reason_label=labels.label(labels.REFERRAL_REASONS, referral.reason),
        status_label=labels.label(labels.REFERRAL_STATUSES, referral.status),
        created_label=labels.beijing_time(referral.created_at),
        acknowledged_label=labels.beijing_time(referral.acknowledged_at),
    )
    return data


def _transcript_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "buttons": [],
            **event,
            "from_label": labels.SPEAKERS.get(event["from"], event["from"]),
            "at_label": labels.beijing_time(event["at"]),
        }
        for event in events
    ]


async def _transcript(case: CaseView, after: int = 0) -> list[dict[str, Any]]:
    try:
        events = await transcripts.transcript(case.conversation_id, after_id=after)
    except transcripts.TranscriptUnavailable as error:
        logger.warning("transcript of %s unavailable: %s", case.reference, error)
        raise Problem(503, "对话记录暂时无法读取") from error
    return _transcript_items(events)


def _render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
) -> web.Response:
    session = session or _session(request)
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


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# --- what pages and API do alike -----------------------------------------------------------


async def _readable_case(request: web.Request) -> CaseView:
    case = await handoff.get_case(_console(request).db, _case_id(request))
    if case is None or not _may_read(_staff(request), case):
        raise Problem(404, "案件不存在")
    return case


async def _open_queue(request: web.Request) -> list[CaseView]:
    member = _staff(request)
    cases = await handoff.queue(_console(request).db)
    return [case for case in cases if _may_read(member, case)]


async def _closed_cases(request: web.Request) -> list[CaseView]:
    cases = await handoff.queue(_console(request).db, statuses=("closed",))
    cases.sort(key=lambda case: (case.closed_at or case.created_at, case.id), reverse=True)
    return cases[:CLOSED_LIST_LIMIT]


async def _claim(request: web.Request) -> CaseView:
    member = _staff(request)
    db = _console(request).db
    case_id = _case_id(request)
    case = await handoff.get_case(db, case_id)
    if case is None or (case.status == "closed" and not _is_supervisor(member)):
        raise Problem(404, "案件不存在")
    if case.status == "claimed" and case.staff_id == member.id:
        return case
    if case.status == "closed":
        raise Problem(409, "该案件已结束")
    try:
        return await handoff.claim_case(db, case_id, member)
    except CaseError as error:
        raise Problem(409, "该案件已被其他同事认领") from error


async def _reply(request: web.Request, text: object) -> CaseView:
    console = _console(request)
    member = _staff(request)
    case = await _readable_case(request)
    if case.status == "waiting":
        raise Problem(409, "请先认领该案件，再回复")
    if case.status != "claimed" or case.staff_id != member.id:
        raise Problem(403, "只有认领该案件的同事可以回复")
    if not isinstance(text, str):
        raise Problem(400, "回复内容须为文字")
    text = text.strip()
    if not text:
        raise Problem(400, "回复内容不能为空")
    if len(text) > MAX_REPLY_CHARACTERS:
        raise Problem(400, f"回复内容不能超过 {MAX_REPLY_CHARACTERS} 个字")
    try:
        await console.rasa.send_staff_message(
            case.conversation_id, text, member.display_name, case.reference
        )
    except RasaError as error:
        logger.warning("reply to %s not delivered: %s", case.reference, error)
        raise Problem(502, "消息未送达，请重试") from error
    await handoff.record_staff_reply(console.db, case, member, text)
    return case


async def _close(request: web.Request, outcome: object, note: object) -> tuple[CaseView, bool]:
    console = _console(request)
    member = _staff(request)
    case = await _readable_case(request)
    if not isinstance(outcome, str) or outcome not in HANDOFF_OUTCOMES:
        raise Problem(400, "请选择有效的结案结果")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise Problem(400, "备注须为文字")
    note = note.strip()
    if len(note) > MAX_NOTE_CHARACTERS:
        raise Problem(400, f"备注不能超过 {MAX_NOTE_CHARACTERS} 个字")
    if case.status == "closed":
        raise Problem(409, "该案件已结束")
    if not _is_supervisor(member) and case.status != "claimed":
        raise Problem(409, "请先认领该案件，再结案")
    try:
        closed = await handoff.close_case(console.db, case.id, member, outcome, note)
    except CaseError as error:
        raise Problem(409, str(error)) from error
    return closed, await console.resume(closed)


async def _acknowledge(request: web.Request) -> None:
    member = _require_supervisor(request)
    try:
        await handoff.acknowledge_referral(_console(request).db, _case_id(request), member)
    except CaseError as error:
        raise Problem(409, "该转交记录不存在或已处理") from error


# --- middlewares ---------------------------------------------------------------------------


def _error_response(request: web.Request, status: int, message: str) -> web.Response:
    if _is_api(request) or request.path == "/health":
        return web.json_response({"error": message}, status=status)
    return _render(request, "error.html", {"status": status, "message": message}, status=status)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Errors as JSON for the API and as a page otherwise; nothing internal leaks."""
    try:
        return await handler(request)
    except Problem as problem:
        return _error_response(request, problem.status, problem.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(
            request, error.status, _HTTP_MESSAGES.get(error.status, error.reason)
        )
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return _error_response(request, 500, _HTTP_MESSAGES[500])


async def _check_csrf(request: web.Request, session: Session | None) -> None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, _HTTP_MESSAGES[413])
    token = request.headers.get("X-CSRF-Token")
    if token is None and not _is_api(request):
        token = _form_text(await request.post(), "csrf_token")
    if session is None or not session.csrf_matches(token):
        raise Problem(403, "安全校验失败，请刷新页面后重试")


@web.middleware
async def authenticate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Load the session and its staff member; refuse anonymous requests and bad CSRF."""
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
        if _is_api(request):
            raise Problem(401, "请先登录")
        raise web.HTTPFound("/login")
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, session)
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
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


# --- pages ---------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """200 while the console and its database answer; nothing else."""
    try:
        async with _console(request).db.session() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception:
        logger.exception("health check: database unavailable")
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    if request.get("staff") is not None:
        return _see_other("/")
    session = _session(request) or SessionStore.new(None)
    response = _render(request, "login.html", {"username": "", "error": None}, session=session)
    _console(request).sessions.save(response, session)
    return response


async def login(request: web.Request) -> web.Response:
    """Check the credentials; on success start a new session."""
    console = _console(request)
    form = await request.post()
    username = (_form_text(form, "username") or "").strip()
    password = _form_text(form, "password") or ""
    try:
        member = await staff_accounts.authenticate(console.db, username, password, request.remote)
    except staff_accounts.SignInLimited:
        return _render(
            request,
            "login.html",
            {"username": username[:64], "error": "登录失败次数过多，请 15 分钟后再试。"},
            status=429,
        )
    if member is None:
        return _render(
            request,
            "login.html",
            {"username": username[:64], "error": "用户名或密码错误。"},
            status=401,
        )
    response = _see_other("/")
    console.sessions.save(response, SessionStore.new(member.id))
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session."""
    console = _console(request)
    member = _staff(request)
    response = _see_other("/login?notice=signed_out")
    session = _session(request)
    if session is not None:
        await staff_accounts.revoke_session(console.db, session.session_id, MAX_AGE_SECONDS)
    console.sessions.clear(response)
    await audit.record(console.db, f"staff:{member.username}", "staff_signed_out")
    return response


async def queue_page(request: web.Request) -> web.Response:
    """The open cases, most urgent first."""
    member = _staff(request)
    cases = [case_data(case, member) for case in await _open_queue(request)]
    return _render(request, "queue.html", {"cases": cases})


async def _case_page(
    request: web.Request,
    case: CaseView,
    *,
    status: int = 200,
    reply_text: str = "",
    reply_error: str | None = None,
    outcome: str = "",
    note: str = "",
    close_error: str | None = None,
) -> web.Response:
    member = _staff(request)
    transcript_error = None
    try:
        events = await _transcript(case)
    except Problem as problem:
        events, transcript_error = [], problem.message
    context = {
        "case": case_data(case, member),
        "summary": labels.summary_items(dict(case.summary)),
        "events": events,
        "last_event_id": events[-1]["id"] if events else 0,
        "transcript_error": transcript_error,
        "can_claim": case.status == "waiting",
        "can_reply": case.status == "claimed" and case.staff_id == member.id,
        "can_close": case.status != "closed"
        and (_is_supervisor(member) or (case.status == "claimed" and case.staff_id == member.id)),
        "outcomes": [(code, labels.OUTCOMES[code]) for code in HANDOFF_OUTCOMES],
        "reply_text": reply_text,
        "reply_error": reply_error,
        "outcome": outcome,
        "note": note,
        "close_error": close_error,
        "max_reply": MAX_REPLY_CHARACTERS,
    }
    return _render(request, "case.html", context, status=status)


async def case_page(request: web.Request) -> web.Response:
    """One case: summary, transcript, reply box and close form."""
    return await _case_page(request, await _readable_case(request))


async def claim_page(request: web.Request) -> web.Response:
    """Claim a case, then show it; if someone was faster, say so on the queue."""
    try:
        case = await _claim(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return _see_other("/?notice=claim_lost")
    return _see_other(f"/cases/{case.id}")


async def reply_page(request: web.Request) -> web.Response:
    """Send a reply; on error show the case again with the text kept."""
    form = await request.post()
    text = _form_text(form, "text")
    try:
        case = await _reply(request, text)
    except Problem as problem:
        if problem.status == 404:
            raise
        return await _case_page(
            request,
            await _readable_case(request),
            status=problem.status,
            reply_text=text or "",
            reply_error=problem.message,
        )
    return _see_other(f"/cases/{case.id}#reply")


async def close_page(request: web.Request) -> web.Response:
    """Close a case; on error show the case again with the form kept."""
    form = await request.post()
    outcome, note = _form_text(form, "outcome"), _form_text(form, "note")
    try:
        _, resumed = await _close(request, outcome, note)
    except Problem as problem:
        if problem.status == 404:
            raise
        return await _case_page(
            request,
            await _readable_case(request),
            status=problem.status,
            outcome=outcome or "",
            note=note or "",
            close_error=problem.message,
        )
    return _see_other("/?notice=closed" if resumed else "/?notice=resume_pending")


async def closed_page(request: web.Request) -> web.Response:
    """Supervisors: the closed cases, newest first."""
    member = _require_supervisor(request)
    cases = [case_data(case, member) for case in await _closed_cases(request)]
    return _render(request, "closed.html", {"cases": cases, "limit": CLOSED_LIST_LIMIT})


async def referrals_page(request: web.Request) -> web.Response:
    """Supervisors: the accounts referred to the collections department."""
    _require_supervisor(request)
    items = [
        {**referral_data(r), "summary_items": labels.summary_items(dict(r.summary))}
        for r in await handoff.referrals(_console(request).db)
    ]
    return _render(request, "referrals.html", {"referrals": items})


async def acknowledge_page(request: web.Request) -> web.Response:
    """Supervisors: the collections department took the referral over."""
    try:
        await _acknowledge(request)
    except Problem as problem:
        if problem.status != 409:
            raise
        return _see_other("/referrals?notice=acknowledge_failed")
    return _see_other("/referrals?notice=acknowledged")


# --- JSON API ------------------------------------------------------------------------------


async def api_me(request: web.Request) -> web.Response:
    """Who is signed in, and the CSRF token for POSTs."""
    member = _staff(request)
    session = _session(request)
    return web.json_response(
        {
            "id": member.id,
            "username": member.username,
            "display_name": member.display_name,
            "role": member.role,
            "role_label": labels.label(labels.ROLES, member.role),
            "csrf_token": session.csrf_token if session else None,
        }
    )


async def api_cases(request: web.Request) -> web.Response:
    """The open queue; `?status=closed` (supervisors) the closed cases."""
    member = _staff(request)
    status = request.query.get("status", "open")
    if status == "open":
        cases = await _open_queue(request)
    elif status == "closed":
        _require_supervisor(request)
        cases = await _closed_cases(request)
    else:
        raise Problem(400, "status 只能是 open 或 closed")
    return web.json_response({"cases": [case_data(case, member) for case in cases]})


async def api_case(request: web.Request) -> web.Response:
    """One case with its summary."""
    case = await _readable_case(request)
    return web.json_response({"case": case_data(case, _staff(request))})


async def api_transcript(request: web.Request) -> web.Response:
    """The case's messages after event `?after=`."""
    case = await _readable_case(request)
    after_text = request.query.get("after", "0")
    if not after_text.isdigit() or len(after_text) > 18:
        raise Problem(400, "after 须为非负整数")
    return web.json_response({"events": await _transcript(case, int(after_text))})


async def api_claim(request: web.Request) -> web.Response:
    """Claim a case; 409 if someone else has it."""
    case = await _claim(request)
    return web.json_response({"case": case_data(case, _staff(request))})


async def api_reply(request: web.Request) -> web.Response:
    """Send {"text"} to the debtor."""
    body = await _json_body(request)
    await _reply(request, body.get("text"))
    return web.json_response({"sent": True})


async def api_close(request: web.Request) -> web.Response:
    """Close with {"outcome", "note"}; says whether the assistant was resumed."""
    body = await _json_body(request)
    case, resumed = await _close(request, body.get("outcome"), body.get("note"))
    data: dict[str, Any] = {"case": case_data(case, _staff(request)), "resumed": resumed}
    if not resumed:
        data["warning"] = NOTICES["resume_pending"][1]
    return web.json_response(data)


async def api_referrals(request: web.Request) -> web.Response:
    """Supervisors: the collections referrals."""
    _require_supervisor(request)
    referrals = await handoff.referrals(_console(request).db)
    return web.json_response({"referrals": [referral_data(r) for r in referrals]})


async def api_acknowledge(request: web.Request) -> web.Response:
    """Supervisors: acknowledge a referral."""
    await _acknowledge(request)
    return web.json_response({"acknowledged": True})


# --- the application -----------------------------------------------------------------------


async def _retry_loop(console: Console) -> None:
    while True:
        await asyncio.sleep(console.resume_retry_seconds)
        try:
            await console.retry_resumes()
        except Exception:
            logger.exception("retrying resumptions failed")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    console = app[CONSOLE]
    await console.rasa.start()
    task = asyncio.create_task(_retry_loop(console))
    app[RETRY_TASK] = task
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await console.rasa.close()
    await transcripts.dispose()


def create_app(
    db: Database,
    *,
    rasa_url: str,
    rasa_token: str,
    secret_key: bytes,
    secure_cookies: bool = False,
    resume_retry_seconds: float = 10.0,
    rasa_timeout: float = 10.0,
) -> web.Application:
    """The console application on `db`, talking to the Rasa server at `rasa_url`."""
    app = web.Application(middlewares=[errors, authenticate], client_max_size=MAX_BODY_BYTES)
    app[CONSOLE] = Console(
        db=db,
        rasa=RasaClient(rasa_url, rasa_token, timeout=rasa_timeout),
        sessions=SessionStore(secret_key, secure=secure_cookies),
        resume_retry_seconds=resume_retry_seconds,
    )
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    app.on_response_prepare.append(_security_headers)  # type: ignore[arg-type]
    app.cleanup_ctx.append(_lifecycle)

    routes = app.router
    routes.add_get("/health", health)
    routes.add_get("/login", login_page)
    routes.add_post("/login", login)
    routes.add_post("/logout", logout)
    routes.add_get("/", queue_page)
    routes.add_get(f"/cases/{CASE_ID}", case_page)
    routes.add_post(f"/cases/{CASE_ID}/claim", claim_page)
    routes.add_post(f"/cases/{CASE_ID}/reply", reply_page)
    routes.add_post(f"/cases/{CASE_ID}/close", close_page)
    routes.add_get("/closed", closed_page)
    routes.add_get("/referrals", referrals_page)
    routes.add_post(f"/referrals/{CASE_ID}/acknowledge", acknowledge_page)

    routes.add_get("/api/me", api_me)
    routes.add_get("/api/cases", api_cases)
    routes.add_get(f"/api/cases/{CASE_ID}", api_case)
    routes.add_get(f"/api/cases/{CASE_ID}/transcript", api_transcript)
    routes.add_post(f"/api/cases/{CASE_ID}/claim", api_claim)
    routes.add_post(f"/api/cases/{CASE_ID}/reply", api_reply)
    routes.add_post(f"/api/cases/{CASE_ID}/close", api_close)
    routes.add_get("/api/referrals", api_referrals)
    routes.add_post(f"/api/referrals/{CASE_ID}/acknowledge", api_acknowledge)

    routes.add_static("/static/", HERE / "static", show_index=False, follow_symlinks=False)
    return app
