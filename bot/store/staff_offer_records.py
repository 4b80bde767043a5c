"""The table of negotiators' offers, its states, and how staff and the assistant read a row.

See `bot.store.staff_offers` for what moves an offer from one state to the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

import sqlalchemy as sa

from bot.domain.negotiation import Circumstances, Offer
from bot.domain.staff_offers import OfferTerms
from bot.domain.vocabulary import PLANS
from bot.store.columns import Money, UTCDateTime, utcnow
from bot.store.models import Base
from bot.store.worklist import json_ready

OfferStatus = Literal[
    "awaiting_approval",
    "approved",
    "sent",
    "accepted",
    "declined",
    "expired",
    "changed",
    "superseded",
]
OFFER_STATUSES: tuple[OfferStatus, ...] = get_args(OfferStatus)
OPEN_STATUSES = ("awaiting_approval", "approved", "sent")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StaffOfferRecord(Base):
    """An offer a negotiator built for a case, with its state and who did what."""

    __tablename__ = "staff_offers"
    __table_args__ = (
        sa.CheckConstraint(_in("status", OFFER_STATUSES), name="status"),
        sa.CheckConstraint(_in("plan", PLANS), name="plan"),
        sa.CheckConstraint(
            "months >= 1 AND months <= 60 AND monthly_amount > 0 AND total_payable > 0"
            " AND amount_waived >= 0",
            name="terms",
        ),
        # At most one open offer per case, on every database.
        sa.Index(
            "uq_staff_offers_open_case",
            "case_id",
            unique=True,
            sqlite_where=sa.text(_in("status", OPEN_STATUSES)),
            postgresql_where=sa.text(_in("status", OPEN_STATUSES)),
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: What staff quote, e.g. `XF20261203-4F7A2C`.
    reference: str = sa.Column(sa.String(32), nullable=False, unique=True)
    case_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("handoff_cases.id", ondelete="RESTRICT"), nullable=False
    )
    #: The proposal it was built from (`negotiation_proposals.reference`), if any.
    proposal_reference: str | None = sa.Column(sa.String(32), nullable=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    account_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    )
    plan: str = sa.Column(sa.String(32), nullable=False)
    months: int = sa.Column(sa.Integer, nullable=False)
    monthly_amount: Decimal = sa.Column(Money, nullable=False)
    total_payable: Decimal = sa.Column(Money, nullable=False)
    amount_waived: Decimal = sa.Column(Money, nullable=False)
    first_due: date = sa.Column(sa.Date, nullable=False)
    #: JSON text: the terms chosen, the offer computed, the figures the limits judge.
    terms: str = sa.Column(sa.Text, nullable=False)
    status: str = sa.Column(sa.String(20), nullable=False)
    created_by: int = sa.Column(
        sa.Integer, sa.ForeignKey("staff_members.id", ondelete="RESTRICT"), nullable=False
    )
    approved_by: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("staff_members.id", ondelete="RESTRICT"), nullable=True
    )
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    approved_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    sent_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    expires_at: datetime | None = sa.Column(UTCDateTime, nullable=True, index=True)
    answered_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    agreement_reference: str | None = sa.Column(sa.String(32), nullable=True)


T = StaffOfferRecord.__table__
OfferErrorCode = Literal[
    "absent",
    "not_awaiting",
    "not_sendable",
    "not_supervisor",
    "own_offer",
    "beyond_approver_limits",
]


class OfferError(Exception):
    """The offer cannot be changed that way; `code` says why (the console words it)."""

    def __init__(self, code: OfferErrorCode) -> None:
        super().__init__(code)
        self.code: OfferErrorCode = code


@dataclass(frozen=True)
class OfferView:
    """An offer as staff and the assistant read it."""

    id: int
    reference: str
    case_id: int
    proposal_reference: str | None
    conversation_id: str
    debtor_id: int
    account_id: int
    plan: str
    months: int
    monthly_amount: Decimal
    total_payable: Decimal
    amount_waived: Decimal
    first_due: date
    status: str
    created_by: int
    approved_by: int | None
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    expires_at: datetime | None
    answered_at: datetime | None
    agreement_reference: str | None
    #: The terms chosen, the offer computed (`Offer.to_dict`), `beyond`, `interest_share`.
    details: dict[str, Any]

    @property
    def offer_terms(self) -> OfferTerms:
        return OfferTerms.from_dict(self.details["terms"])

    @property
    def offer(self) -> Offer:
        return Offer.from_dict(self.details["offer"])

    @property
    def circumstances(self) -> Circumstances | None:
        """The circumstances the offer was judged on (the proposal's), if complete."""
        found = self.details.get("circumstances")
        if not found:
            return None
        proposed = found.get("proposed_monthly")
        return Circumstances(
            monthly_income=Decimal(found["monthly_income"]),
            monthly_expenses=Decimal(found["monthly_expenses"]),
            other_repayments=Decimal(found["other_repayments"]),
            hardship_reason=str(found["hardship_reason"]),
            hardship_months=found.get("hardship_months"),
            proposed_monthly=None if proposed is None else Decimal(proposed),
            available_funds=Decimal(found["available_funds"]),
        )

    @property
    def beyond(self) -> tuple[str, ...]:
        return tuple(self.details["beyond"])

    @property
    def interest_share(self) -> Decimal:
        return Decimal(self.details["interest_share"])

    def to_dict(self) -> dict[str, Any]:
        data = json_ready(self)
        for name in ("monthly_amount", "total_payable", "amount_waived"):
            data[name] = str(data[name])
        data["first_due"] = self.first_due.isoformat()
        return data


def view_of(row: StaffOfferRecord) -> OfferView:
    values = {name: getattr(row, name) for name in OfferView.__dataclass_fields__ if name in T.c}
    return OfferView(**values, details=json.loads(row.terms))
