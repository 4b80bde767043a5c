"""The console's JSON API under `/api/`, mirroring the pages; and `/health`.

Errors are `{"error": message}` with the status (the `errors` middleware).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bot.console import cases, labels
from bot.console.handling import (
    Problem,
    case_id_of,
    json_body,
    require_supervisor,
    session_of,
    staff_of,
)
from bot.console.state import console_of
from bot.console.texts import NOTICES
from bot.store import referrals
from bot.store.cases import CaseView

logger = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    """200 while the console and its database answer; nothing else."""
    try:
        async with console_of(request).db.session() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception:
        logger.exception("health check: database unavailable")
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def api_me(request: web.Request) -> web.Response:
    """Who is signed in, and the CSRF token for POSTs."""
    member = staff_of(request)
    session = session_of(request)
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
    member = staff_of(request)
    db = console_of(request).db
    status = request.query.get("status", "open")
    if status == "open":
        listed = await cases.open_queue(db, member)
    elif status == "closed":
        require_supervisor(request)
        listed = await cases.closed_cases(db)
    else:
        raise Problem(400, "status 只能是 open 或 closed")
    return web.json_response({"cases": [cases.case_data(case, member) for case in listed]})


async def _readable_case(request: web.Request) -> CaseView:
    return await cases.readable_case(console_of(request).db, staff_of(request), case_id_of(request))


async def api_case(request: web.Request) -> web.Response:
    """One case with its summary."""
    case = await _readable_case(request)
    return web.json_response({"case": cases.case_data(case, staff_of(request))})


async def api_transcript(request: web.Request) -> web.Response:
    """The case's messages after event `?after=`."""
    case = await _readable_case(request)
    after_text = request.query.get("after", "0")
    if not after_text.isdigit() or len(after_text) > 18:
        raise Problem(400, "after 须为非负整数")
    return web.json_response({"events": await cases.transcript(case, int(after_text))})


async def api_claim(request: web.Request) -> web.Response:
    """Claim a case; 409 if someone else has it."""
    member = staff_of(request)
    case = await cases.claim(console_of(request).db, member, case_id_of(request))
    return web.json_response({"case": cases.case_data(case, member)})


async def api_reply(request: web.Request) -> web.Response:
    """Send {"text"} to the debtor."""
    body = await json_body(request)
    await cases.reply(console_of(request), staff_of(request), case_id_of(request), body.get("text"))
    return web.json_response({"sent": True})


async def api_close(request: web.Request) -> web.Response:
    """Close with {"outcome", "note"}; says whether the assistant was resumed."""
    body = await json_body(request)
    member = staff_of(request)
    case, resumed = await cases.close(
        console_of(request), member, case_id_of(request), body.get("outcome"), body.get("note")
    )
    data: dict[str, Any] = {"case": cases.case_data(case, member), "resumed": resumed}
    if not resumed:
        data["warning"] = NOTICES["resume_pending"][1]
    return web.json_response(data)


async def api_referrals(request: web.Request) -> web.Response:
    """Supervisors: the collections referrals."""
    require_supervisor(request)
    listed = await referrals.referrals(console_of(request).db)
    return web.json_response({"referrals": [cases.referral_data(r) for r in listed]})


async def api_acknowledge(request: web.Request) -> web.Response:
    """Supervisors: acknowledge a referral."""
    supervisor = require_supervisor(request)
    await cases.acknowledge(console_of(request).db, supervisor, case_id_of(request))
    return web.json_response({"acknowledged": True})
