"""The debtor's agreements on a case, and the supervisors' agreements of the day.

- The case page shows the debtor's agreements and promises with their
  installments and the payments applied (`case_agreements`, also
  `GET /api/cases/<id>/agreements`).
- Supervisors see, for a (Beijing) day, installments due that day, installments
  late, and plans the sweep broke that day: `GET /agreements?date=YYYY-MM-DD`
  (default today) and `GET /api/agreements?date=…`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from bot.console import cases, labels
from bot.console.handling import Problem, case_id_of, render, require_supervisor, staff_of
from bot.console.state import console_of
from bot.domain.clock import beijing_today
from bot.store.agreement_state import AgreementState, day_lists, debtor_agreements
from bot.store.cases import CaseView
from bot.store.engine import Database

#: `?date=` is `YYYY-MM-DD`, nothing longer.
DATE_CHARS = 10


def agreement_data(state: AgreementState) -> dict[str, Any]:
    """An agreement as the console shows it: the stored figures and their labels."""
    data = state.to_dict()
    data["plan_label"] = labels.label(labels.PLANS, state.plan)
    data["status_label"] = labels.label(labels.AGREEMENT_STATUSES, state.status)
    data["remaining"] = str(state.total_payable - state.paid)
    for item in data["installments"]:
        item["status_label"] = labels.label(labels.INSTALLMENT_STATUSES, item["status"])
    return data


async def case_agreements(db: Database, case: CaseView) -> list[dict[str, Any]]:
    """The agreements of the case's debtor (none before verification), newest first."""
    if case.debtor_id is None:
        return []
    states = await debtor_agreements(db, case.debtor_id, with_payments=True)
    return [agreement_data(state) for state in states]


async def api_case_agreements(request: web.Request) -> web.Response:
    """The agreements of a case the staff member may read."""
    db = console_of(request).db
    case = await cases.readable_case(db, staff_of(request), case_id_of(request))
    return web.json_response({"agreements": await case_agreements(db, case)})


def day_of(request: web.Request) -> date:
    """`?date=`, or today in Beijing; 400 for anything but a real `YYYY-MM-DD` date."""
    text = request.query.get("date", "")
    if not text:
        return beijing_today()
    if len(text) != DATE_CHARS:
        raise Problem(400, "date 须为 YYYY-MM-DD 格式的日期")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Problem(400, "date 须为 YYYY-MM-DD 格式的日期") from None


def _with_labels(data: dict[str, Any]) -> dict[str, Any]:
    for item in data["due"] + data["late"] + data["broken"]:
        item["plan_label"] = labels.label(labels.PLANS, item["plan"])
        if "status" in item:
            item["status_label"] = labels.label(labels.INSTALLMENT_STATUSES, item["status"])
    return data


async def api_agreements_of_day(request: web.Request) -> web.Response:
    """Supervisors: the day's due, late and broken agreements as JSON."""
    require_supervisor(request)
    lists = await day_lists(console_of(request).db, day_of(request))
    return web.json_response(_with_labels(lists.to_dict()))


async def agreements_page(request: web.Request) -> web.Response:
    """Supervisors: the day's due, late and broken agreements."""
    require_supervisor(request)
    lists = await day_lists(console_of(request).db, day_of(request))
    return render(request, "agreements.html", {"lists": _with_labels(lists.to_dict())})


def setup_agreement_routes(app: web.Application, case_id: str) -> None:
    """Add the agreement routes to `app` (`case_id`: the path pattern of a case's id)."""
    app.router.add_get("/agreements", agreements_page)
    app.router.add_get("/api/agreements", api_agreements_of_day)
    app.router.add_get(f"/api/cases/{case_id}/agreements", api_case_agreements)
