"""What the pages and the JSON API do alike with the offers negotiators build.

A negotiator builds an offer for a case they hold, from the case's proposal;
the engine (`bot.domain.staff_offers`) computes and checks it. Within the
builder's limits it is sent at once; beyond them a supervisor approves it first
and it is sent on approval. Sending runs `action_send_staff_offer` in the
debtor's conversation through the Rasa HTTP API, the path of staff replies:
the action reads the offer and shows its terms with confirm and decline buttons.
Each check raises `Problem` with the status and the message staff see.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from bot.console import labels
from bot.console.cases import readable_case
from bot.console.handling import Problem, is_supervisor
from bot.console.rasa_api import RasaError
from bot.console.state import Console
from bot.console.texts import OFFER_ERRORS, OFFER_REFUSALS
from bot.domain.clock import beijing_today
from bot.domain.negotiation import AccountPosition, Circumstances
from bot.domain.policy import Policy, current_policy
from bot.domain.redaction import redact_text
from bot.domain.staff_offers import OfferTerms, Refusal, StaffOffer, build_staff_offer
from bot.store import staff_offers as store
from bot.store.accounts import account_summaries
from bot.store.agreements import latest_proposal, position
from bot.store.cases import CaseView, get_case
from bot.store.models import StaffMember

logger = logging.getLogger(__name__)

SEND_ACTION = "action_send_staff_offer"
MAX_NOTE_CHARACTERS = 500
MONEY_TEXT = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The fields of an offer's form and of the API's body.
FIELDS = ("plan", "first_due", "months", "monthly_amount", "waiver", "note")


@dataclass(frozen=True)
class OfferBasis:
    """What an offer for a case is built on: the proposal, the account, the circumstances."""

    case: CaseView
    proposal: dict[str, Any] | None
    account: AccountPosition
    circumstances: Circumstances | None


def _text(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Problem(400, f"{name} 须为文字")
    return str(value).strip()


def _money(values: Mapping[str, Any], name: str, label: str) -> Decimal | None:
    text = _text(values, name)
    if not text:
        return None
    if len(text) > 16 or not MONEY_TEXT.fullmatch(text):
        raise Problem(400, f"{label}须为金额，如 1234.50")
    return Decimal(text)


def parse_terms(values: Mapping[str, Any]) -> OfferTerms:
    """The terms of a form or a JSON body; 400 with the field's problem."""
    plan = _text(values, "plan")
    if plan not in labels.PLANS:
        raise Problem(400, "请选择方案类型")
    due_text = _text(values, "first_due")
    try:
        if not DATE_TEXT.fullmatch(due_text):
            raise ValueError(due_text)
        first_due = date.fromisoformat(due_text)
    except ValueError:
        raise Problem(400, "首期还款日须为日期，如 2026-12-31") from None
    months_text = _text(values, "months")
    if months_text and (not months_text.isdigit() or len(months_text) > 3):
        raise Problem(400, "期数须为 1 到 60 的整数")
    months = int(months_text) if months_text else None
    if months is not None and months < 1:
        raise Problem(400, "期数须为 1 到 60 的整数")
    note = _text(values, "note")
    if len(note) > MAX_NOTE_CHARACTERS:
        raise Problem(400, f"说明不能超过 {MAX_NOTE_CHARACTERS} 个字")
    # A mobile or ID number in the note is kept masked (bot.domain.redaction).
    note = redact_text(note)
    return OfferTerms(
        plan=plan,
        first_due=first_due,
        months=months,
        monthly_amount=_money(values, "monthly_amount", "每期金额"),
        waiver=_money(values, "waiver", "减免金额") or Decimal("0.00"),
        note=note,
    )


def refusal_text(refusal: Refusal) -> str:
    return OFFER_REFUSALS[refusal.reason].format(**refusal.needs)


def _circumstances(proposal: dict[str, Any] | None) -> Circumstances | None:
    """The proposal's circumstances, if the debtor gave enough to judge affordability."""
    found = ((proposal or {}).get("details") or {}).get("circumstances") or {}
    try:
        income, expenses = found.get("monthly_income"), found.get("monthly_expenses")
        if income is None or expenses is None:
            return None
        proposed = found.get("proposed_monthly")
        months = found.get("hardship_months")
        return Circumstances(
            monthly_income=Decimal(str(income)),
            monthly_expenses=Decimal(str(expenses)),
            other_repayments=Decimal(str(found.get("other_repayments") or "0")),
            hardship_reason=str(found.get("hardship_reason") or "other"),
            hardship_months=int(months) if isinstance(months, int) else None,
            proposed_monthly=None if proposed in (None, "unknown") else Decimal(str(proposed)),
            available_funds=Decimal(str(found.get("available_funds") or "0")),
        )
    except (ArithmeticError, ValueError, TypeError):
        return None


def may_build(member: StaffMember, case: CaseView) -> bool:
    """The holder of an open case builds its offers; supervisors too."""
    if case.status == "closed" or case.debtor_id is None:
        return False
    return is_supervisor(member) or (case.status == "claimed" and case.staff_id == member.id)


async def basis(console: Console, member: StaffMember, case_id: int) -> OfferBasis:
    """The case (if `member` may see it) and what its offers are built on."""
    case = await readable_case(console.db, member, case_id)
    proposal = await latest_proposal(console.db, case.conversation_id)
    accounts = await account_summaries(console.db, case.debtor_id) if case.debtor_id else []
    wanted = case.account_id
    if proposal is not None:
        wanted = proposal["details"].get("account", {}).get("account_id", wanted)
    summary = next((a for a in accounts if a.account_id == wanted), None)
    if summary is None:
        raise Problem(409, "该案件没有可协商的账户（债务人未核实身份）")
    return OfferBasis(case, proposal, position(summary), _circumstances(proposal))


def compute(
    found: OfferBasis, terms: OfferTerms, member: StaffMember, policy: Policy
) -> StaffOffer:
    """The engine's offer for `terms`; 422 with the reason if the policy refuses it."""
    built = build_staff_offer(
        terms, found.account, found.circumstances, member.role, beijing_today(), policy
    )
    if isinstance(built, Refusal):
        raise Problem(422, refusal_text(built))
    return built


async def submit(
    console: Console, member: StaffMember, found: OfferBasis, terms: OfferTerms
) -> tuple[store.OfferView, bool]:
    """Store the offer; send it at once if within the builder's limits.

    Returns the offer and whether it reached the debtor.
    """
    if not may_build(member, found.case):
        raise Problem(403, "只有认领该案件的同事可以制定方案")
    built = compute(found, terms, member, current_policy())
    assert found.case.debtor_id is not None
    view = await store.create_offer(
        console.db,
        case_id=found.case.id,
        conversation_id=found.case.conversation_id,
        debtor_id=found.case.debtor_id,
        proposal_reference=found.proposal["reference"] if found.proposal else None,
        built=built,
        circumstances=found.circumstances,
        builder=member,
        today=beijing_today(),
    )
    if view.status == "approved":
        return await send(console, member, view)
    return view, False


async def send(
    console: Console, member: StaffMember, view: store.OfferView
) -> tuple[store.OfferView, bool]:
    """Show an approved offer in the debtor's conversation; False if Rasa did not take it."""
    if view.status not in ("approved", "sent"):
        raise Problem(409, OFFER_ERRORS["not_sendable"])
    case = await get_case(console.db, view.case_id)
    if case is None or case.status == "closed":
        # The conversation is the assistant's again: it would not read the answer.
        raise Problem(409, "该案件已结束，方案不能发送")
    try:
        await console.rasa.execute(view.conversation_id, SEND_ACTION)
    except RasaError as error:
        logger.warning("offer %s not delivered: %s", view.reference, error)
        return view, False
    try:
        return await store.mark_sent(console.db, view.id, member, current_policy()), True
    except store.OfferError as error:
        raise Problem(409, OFFER_ERRORS[error.code]) from error


async def readable_offer(console: Console, member: StaffMember, offer_id: int) -> store.OfferView:
    """The offer, if `member` may see its case; else 404."""
    await store.expire_offers(console.db)
    view = await store.get_offer(console.db, offer_id)
    if view is None:
        raise Problem(404, OFFER_ERRORS["absent"])
    if not is_supervisor(member) and view.created_by != member.id:
        await readable_case(console.db, member, view.case_id)
    return view


async def approve(
    console: Console, member: StaffMember, offer_id: int
) -> tuple[store.OfferView, bool]:
    """A supervisor approves the offer, and it is sent; 403/409 with the reason if not."""
    found = await readable_offer(console, member, offer_id)
    case = await get_case(console.db, found.case_id)
    if case is None or case.status == "closed":
        raise Problem(409, "该案件已结束，方案不能发送")
    try:
        view = await store.approve_offer(console.db, offer_id, member, current_policy())
    except store.OfferError as error:
        status = 409 if error.code in ("not_awaiting", "absent") else 403
        raise Problem(status, OFFER_ERRORS[error.code]) from error
    return await send(console, member, view)


def offer_data(view: store.OfferView) -> dict[str, Any]:
    """An offer as the API and the templates show it, with Chinese labels."""
    data = view.to_dict()
    data.update(
        plan_label=labels.label(labels.PLANS, view.plan),
        status_label=labels.label(labels.OFFER_STATUSES, view.status),
        beyond_labels=[labels.label(labels.LIMITS, code) for code in view.beyond],
        created_label=labels.beijing_time(view.created_at),
        sent_label=labels.beijing_time(view.sent_at),
        expires_label=labels.beijing_time(view.expires_at),
        answered_label=labels.beijing_time(view.answered_at),
        schedule=view.details["offer"]["schedule"],
        note=view.details["terms"].get("note", ""),
        interest_share=view.details["interest_share"],
    )
    return data


def preview_data(built: StaffOffer) -> dict[str, Any]:
    """A computed offer, not stored, as the API and the form show it."""
    offer = built.offer.to_dict()
    return {
        **offer,
        "plan_label": labels.label(labels.PLANS, built.offer.plan),
        "interest_waived": str(built.interest_waived),
        "interest_share": str(built.interest_waiver_share),
        "affordable_monthly": None
        if built.affordable_monthly is None
        else str(built.affordable_monthly),
        "needs_approval": built.needs_approval,
        "beyond": list(built.beyond),
        "beyond_labels": [labels.label(labels.LIMITS, code) for code in built.beyond],
    }
