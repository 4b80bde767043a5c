"""The console's HTML pages: sign-in, the queue, a case, and the supervisors' lists.

Server-rendered with Jinja2 (autoescaped). A form that fails shows its page
again with what was typed kept; a case changed by someone else meanwhile sends
staff back to the queue with a notice.
"""

from __future__ import annotations

from aiohttp import web

from bot.console import cases, labels
from bot.console.agreement_pages import case_agreements
from bot.console.client_address import client_address_of
from bot.console.handling import (
    Problem,
    case_id_of,
    form_text,
    is_supervisor,
    render,
    require_supervisor,
    see_other,
    session_of,
    staff_of,
)
from bot.console.sessions import MAX_AGE_SECONDS, SessionStore
from bot.console.state import console_of
from bot.domain.vocabulary import HANDOFF_OUTCOMES
from bot.store import audit, referrals, staff_offers
from bot.store import staff as staff_accounts
from bot.store.cases import CaseView
from bot.store.engine import Database


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    if request.get("staff") is not None:
        return see_other("/")
    session = session_of(request) or SessionStore.new(None)
    response = render(request, "login.html", {"username": "", "error": None}, session=session)
    console_of(request).sessions.save(response, session)
    return response


async def login(request: web.Request) -> web.Response:
    """Check the credentials; on success start a new session."""
    console = console_of(request)
    form = await request.post()
    username = (form_text(form, "username") or "").strip()
    password = form_text(form, "password") or ""
    try:
        member = await staff_accounts.authenticate(
            console.db, username, password, client_address_of(request)
        )
    except staff_accounts.SignInLimited:
        return render(
            request,
            "login.html",
            {"username": username[:64], "error": "登录失败次数过多，请 15 分钟后再试。"},
            status=429,
        )
    if member is None:
        return render(
            request,
            "login.html",
            {"username": username[:64], "error": "用户名或密码错误。"},
            status=401,
        )
    response = see_other("/")
    console.sessions.save(response, SessionStore.new(member.id))
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session."""
    console = console_of(request)
    member = staff_of(request)
    response = see_other("/login?notice=signed_out")
    session = session_of(request)
    if session is not None:
        await staff_accounts.revoke_session(console.db, session.session_id, MAX_AGE_SECONDS)
    console.sessions.clear(response)
    await audit.record(console.db, f"staff:{member.username}", "staff_signed_out")
    return response


async def queue_page(request: web.Request) -> web.Response:
    """The open cases, most urgent first."""
    member = staff_of(request)
    queue = await cases.open_queue(console_of(request).db, member)
    return render(request, "queue.html", {"cases": [cases.case_data(c, member) for c in queue]})


async def _readable_case(request: web.Request) -> CaseView:
    return await cases.readable_case(console_of(request).db, staff_of(request), case_id_of(request))


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
    member = staff_of(request)
    transcript_error = None
    try:
        events = await cases.transcript(case)
    except Problem as problem:
        events, transcript_error = [], problem.message
    context = {
        "case": cases.case_data(case, member),
        "summary": labels.summary_items(dict(case.summary)),
        "events": events,
        "last_event_id": events[-1]["id"] if events else 0,
        "transcript_error": transcript_error,
        "can_claim": case.status == "waiting",
        "can_reply": case.status == "claimed" and case.staff_id == member.id,
        "can_close": case.status != "closed"
        and (is_supervisor(member) or (case.status == "claimed" and case.staff_id == member.id)),
        "outcomes": [(code, labels.OUTCOMES[code]) for code in HANDOFF_OUTCOMES],
        "reply_text": reply_text,
        "reply_error": reply_error,
        "outcome": outcome,
        "note": note,
        "close_error": close_error,
        "max_reply": cases.MAX_REPLY_CHARACTERS,
        "reading_note": cases.reading_note(events),
        "agreements": await case_agreements(console_of(request).db, case),
        "offers": await _case_offers(console_of(request).db, case.id),
    }
    return render(request, "case.html", context, status=status)


async def _case_offers(db: Database, case_id: int) -> list[dict[str, str]]:
    """The case's offers and where each stands: declined, expired or changed show here too."""
    await staff_offers.expire_offers(db)
    return [
        {
            "reference": offer.reference,
            "status": offer.status,
            "status_label": labels.OFFER_STATUSES.get(offer.status, offer.status),
        }
        for offer in await staff_offers.offers_of_case(db, case_id)
    ]


async def case_page(request: web.Request) -> web.Response:
    """One case: summary, transcript, reply box and close form."""
    return await _case_page(request, await _readable_case(request))


async def claim_page(request: web.Request) -> web.Response:
    """Claim a case, then show it; if someone was faster, say so on the queue."""
    try:
        case = await cases.claim(console_of(request).db, staff_of(request), case_id_of(request))
    except Problem as problem:
        if problem.status != 409:
            raise
        return see_other("/?notice=claim_lost")
    return see_other(f"/cases/{case.id}")


async def reply_page(request: web.Request) -> web.Response:
    """Send a reply; on error show the case again with the text kept."""
    form = await request.post()
    text = form_text(form, "text")
    try:
        case = await cases.reply(console_of(request), staff_of(request), case_id_of(request), text)
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
    return see_other(f"/cases/{case.id}#reply")


async def close_page(request: web.Request) -> web.Response:
    """Close a case; on error show the case again with the form kept."""
    form = await request.post()
    outcome, note = form_text(form, "outcome"), form_text(form, "note")
    try:
        _, resumed = await cases.close(
            console_of(request), staff_of(request), case_id_of(request), outcome, note
        )
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
    return see_other("/?notice=closed" if resumed else "/?notice=resume_pending")


async def closed_page(request: web.Request) -> web.Response:
    """Supervisors: the closed cases, newest first."""
    member = require_supervisor(request)
    closed = await cases.closed_cases(console_of(request).db)
    return render(
        request,
        "closed.html",
        {"cases": [cases.case_data(c, member) for c in closed], "limit": cases.CLOSED_LIST_LIMIT},
    )


async def referrals_page(request: web.Request) -> web.Response:
    """Supervisors: the accounts referred to the collections department."""
    require_supervisor(request)
    items = [
        {**cases.referral_data(r), "summary_items": labels.summary_items(dict(r.summary))}
        for r in await referrals.referrals(console_of(request).db)
    ]
    return render(request, "referrals.html", {"referrals": items})


async def acknowledge_page(request: web.Request) -> web.Response:
    """Supervisors: the collections department took the referral over."""
    try:
        supervisor = require_supervisor(request)
        await cases.acknowledge(console_of(request).db, supervisor, case_id_of(request))
    except Problem as problem:
        if problem.status != 409:
            raise
        return see_other("/referrals?notice=acknowledge_failed")
    return see_other("/referrals?notice=acknowledged")
