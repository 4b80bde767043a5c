"""The offer pages and their JSON API: build an offer for a case, approve, send, read.

`GET /cases/<id>/offer` shows the case's proposal and the form; `POST` with
`intent=preview` computes and shows the offer, `intent=submit` stores (and
sends) it. Supervisors approve on `/offers`. The API mirrors it:
`POST /api/cases/<id>/offer` (`"preview": true` to compute only),
`POST /api/offers/<id>/approve`, `POST /api/offers/<id>/send`,
`GET /api/offers/<id>` and `GET /api/offers` (supervisors: awaiting approval).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.console import labels, offers
from bot.console.cases import case_data
from bot.console.handling import (
    Problem,
    case_id_of,
    json_body,
    render,
    require_supervisor,
    see_other,
    staff_of,
)
from bot.console.state import console_of
from bot.console.texts import OFFER_NOTICES
from bot.domain.policy import current_policy
from bot.domain.staff_offers import StaffOffer
from bot.store import staff_offers as store


def _notice(request: web.Request) -> dict[str, str] | None:
    found = OFFER_NOTICES.get(request.query.get("notice", ""))
    return {"kind": found[0], "text": found[1]} if found else None


def _form_values(found: offers.OfferBasis) -> dict[str, str]:
    """The form's first values: the proposal's draft plan, if it has one."""
    draft = ((found.proposal or {}).get("details") or {}).get("draft") or {}
    if not draft:
        return {name: "" for name in offers.FIELDS}
    return {
        "plan": str(draft.get("plan", "")),
        "first_due": str(draft.get("first_due", "")),
        "months": str(draft.get("months", "")),
        "monthly_amount": "",
        "waiver": str(draft.get("amount_waived", "")),
        "note": "",
    }


async def _offer_page(
    request: web.Request,
    found: offers.OfferBasis,
    *,
    values: dict[str, str] | None = None,
    preview: StaffOffer | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    member = staff_of(request)
    console = console_of(request)
    await store.expire_offers(console.db)
    listed = await store.offers_of_case(console.db, found.case.id)
    proposal = found.proposal or {}
    details = proposal.get("details") or {}
    account = found.account
    context = {
        "case": case_data(found.case, member),
        "proposal": proposal,
        "proposal_reason": labels.label(labels.PROPOSAL_REASONS, proposal.get("reason")),
        "proposal_status": labels.label(labels.PROPOSAL_STATUSES, proposal.get("status")),
        "proposal_items": labels.summary_items(
            {
                key: details[key]
                for key in ("draft", "circumstances", "ineligible")
                if key in details
            }
        ),
        "account": {
            "overdue_principal": account.overdue_principal,
            "interest": account.interest,
            "penalty_fees": account.penalty_fees,
            "overdue_total": account.overdue_total,
            "days_past_due": account.days_past_due,
            "product": account.product,
        },
        "plans": [(code, labels.PLANS[code]) for code in current_policy().staff_authority.plans],
        "values": values or _form_values(found),
        "preview": None if preview is None else offers.preview_data(preview),
        "error": error,
        "offers": [offers.offer_data(view) for view in listed],
        "can_build": offers.may_build(member, found.case),
        "max_note": offers.MAX_NOTE_CHARACTERS,
        "notice": _notice(request),
    }
    return render(request, "offer.html", context, status=status)


async def offer_page(request: web.Request) -> web.Response:
    """The case's proposal, its offers and the form to build one."""
    member = staff_of(request)
    found = await offers.basis(console_of(request), member, case_id_of(request))
    return await _offer_page(request, found)


async def offer_form(request: web.Request) -> web.Response:
    """Compute the offer (`intent=preview`) or store and send it (`intent=submit`)."""
    console, member = console_of(request), staff_of(request)
    found = await offers.basis(console, member, case_id_of(request))
    form = await request.post()
    values = {name: str(form.get(name) or "")[:1000] for name in offers.FIELDS}
    try:
        terms = offers.parse_terms(values)
        if form.get("intent") != "submit":
            built = offers.compute(found, terms, member, current_policy())
            return await _offer_page(request, found, values=values, preview=built)
        view, sent = await offers.submit(console, member, found, terms)
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        return await _offer_page(
            request, found, values=values, error=problem.message, status=problem.status
        )
    notice = "awaiting" if view.status == "awaiting_approval" else "sent" if sent else "not_sent"
    return see_other(f"/cases/{found.case.id}/offer?notice={notice}")


async def approvals_page(request: web.Request) -> web.Response:
    """Supervisors: the offers waiting for approval."""
    require_supervisor(request)
    console = console_of(request)
    await store.expire_offers(console.db)
    waiting = [offers.offer_data(view) for view in await store.awaiting_approval(console.db)]
    return render(request, "approvals.html", {"offers": waiting, "notice": _notice(request)})


async def approve_form(request: web.Request) -> web.Response:
    """Supervisors: approve an offer; it is sent at once."""
    supervisor = require_supervisor(request)
    try:
        _, sent = await offers.approve(console_of(request), supervisor, case_id_of(request))
    except Problem as problem:
        if problem.status == 404:
            raise
        code = {403: "approval_refused", 409: "approval_stale"}.get(problem.status, "not_sent")
        return see_other(f"/offers?notice={code}")
    return see_other(f"/offers?notice={'approved' if sent else 'not_sent'}")


async def send_form(request: web.Request) -> web.Response:
    """Send an approved offer again (after Rasa failed, or the debtor missed it)."""
    console, member = console_of(request), staff_of(request)
    view = await offers.readable_offer(console, member, case_id_of(request))
    _, sent = await offers.send(console, member, view)
    return see_other(f"/cases/{view.case_id}/offer?notice={'sent' if sent else 'not_sent'}")


# --- the JSON API ---------------------------------------------------------------------------


async def api_build(request: web.Request) -> web.Response:
    """Build an offer from the body's terms; `"preview": true` computes without storing."""
    console, member = console_of(request), staff_of(request)
    body = await json_body(request)
    found = await offers.basis(console, member, case_id_of(request))
    terms = offers.parse_terms(body)
    preview = body.get("preview", False)
    if not isinstance(preview, bool):
        raise Problem(400, "preview 须为 true 或 false")
    if preview:
        built = offers.compute(found, terms, member, current_policy())
        return web.json_response({"preview": offers.preview_data(built)})
    view, sent = await offers.submit(console, member, found, terms)
    return web.json_response({"offer": offers.offer_data(view), "sent": sent}, status=201)


async def api_offer(request: web.Request) -> web.Response:
    """One offer with its state."""
    view = await offers.readable_offer(console_of(request), staff_of(request), case_id_of(request))
    return web.json_response({"offer": offers.offer_data(view)})


async def api_offers(request: web.Request) -> web.Response:
    """Supervisors: the offers waiting for approval."""
    require_supervisor(request)
    console = console_of(request)
    await store.expire_offers(console.db)
    listed = await store.awaiting_approval(console.db)
    return web.json_response({"offers": [offers.offer_data(view) for view in listed]})


async def api_approve(request: web.Request) -> web.Response:
    """Supervisors: approve an offer, which is then sent."""
    supervisor = require_supervisor(request)
    view, sent = await offers.approve(console_of(request), supervisor, case_id_of(request))
    data: dict[str, Any] = {"offer": offers.offer_data(view), "sent": sent}
    return web.json_response(data)


async def api_send(request: web.Request) -> web.Response:
    """Send an approved offer (again)."""
    console, member = console_of(request), staff_of(request)
    view = await offers.readable_offer(console, member, case_id_of(request))
    view, sent = await offers.send(console, member, view)
    if not sent:
        raise Problem(502, "方案未送达，请重试")
    return web.json_response({"offer": offers.offer_data(view), "sent": True})


def setup_offer_routes(app: web.Application, id_pattern: str) -> None:
    """Add the offer pages and API to `app`."""
    routes = app.router
    routes.add_get(f"/cases/{id_pattern}/offer", offer_page)
    routes.add_post(f"/cases/{id_pattern}/offer", offer_form)
    routes.add_get("/offers", approvals_page)
    routes.add_post(f"/offers/{id_pattern}/approve", approve_form)
    routes.add_post(f"/offers/{id_pattern}/send", send_form)
    routes.add_post(f"/api/cases/{id_pattern}/offer", api_build)
    routes.add_get("/api/offers", api_offers)
    routes.add_get(f"/api/offers/{id_pattern}", api_offer)
    routes.add_post(f"/api/offers/{id_pattern}/approve", api_approve)
    routes.add_post(f"/api/offers/{id_pattern}/send", api_send)
