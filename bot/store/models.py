"""Tables of the bank data: debtors, their accounts, verification and the audit log.

Written for SQLAlchemy 1.4 in the 2.0 style: declarative classes with `Column`,
queried with `select()`. Times are timezone-aware UTC on every database; money
is `Decimal`, never float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import declarative_base, relationship

from bot.domain.vocabulary import (
    HANDOFF_OUTCOMES,
    HANDOFF_REASONS,
    HANDOFF_STATUSES,
    REFERRAL_REASONS,
    STAFF_ROLES,
)
from bot.store.columns import CENT as CENT
from bot.store.columns import MONEY_PRECISION as MONEY_PRECISION
from bot.store.columns import MONEY_SCALE as MONEY_SCALE
from bot.store.columns import Money, UTCDateTime
from bot.store.columns import to_money as to_money
from bot.store.columns import utcnow as utcnow

#: Constraint and index names, so that the models and the migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
}
Base: Any = declarative_base(metadata=sa.MetaData(naming_convention=NAMING_CONVENTION))


class Debtor(Base):
    """A person with at least one overdue account."""

    __tablename__ = "debtors"
    __table_args__ = (
        sa.CheckConstraint("length(national_id_last4) = 4", name="last4_length"),
        sa.CheckConstraint("length(mobile) = 11", name="mobile_length"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    full_name: str = sa.Column(sa.String(100), nullable=False, index=True)
    #: `scrypt$<salt-hex>$<hash-hex>` of the full national ID; never the ID itself.
    national_id_hash: str = sa.Column(sa.String(200), nullable=False)
    national_id_last4: str = sa.Column(sa.String(4), nullable=False)
    mobile: str = sa.Column(sa.String(11), nullable=False, unique=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)

    accounts: list[Account] = relationship(
        "Account", back_populates="debtor", order_by="Account.id", lazy="raise"
    )


class Account(Base):
    """One overdue product of a debtor; all amounts in `currency`."""

    __tablename__ = "accounts"
    __table_args__ = (
        sa.CheckConstraint(
            "product IN ('credit_card', 'consumer_loan', 'mortgage', 'car_loan')",
            name="product",
        ),
        sa.CheckConstraint(
            "outstanding_principal >= 0 AND overdue_principal >= 0 AND interest >= 0"
            " AND penalty_fees >= 0",
            name="amounts",
        ),
        sa.CheckConstraint(
            "missed_installments >= 0 AND days_past_due >= 0 AND broken_plans >= 0",
            name="counts",
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="CASCADE"), nullable=False, index=True
    )
    #: The bank's account number, as the payment feed names the account.
    account_no: str | None = sa.Column(sa.String(34), nullable=True, unique=True, index=True)
    product: str = sa.Column(sa.String(20), nullable=False)
    currency: str = sa.Column(sa.String(3), nullable=False, default="CNY", server_default="CNY")
    #: The whole remaining principal; for a card, the overdue principal.
    outstanding_principal: Decimal = sa.Column(Money, nullable=False)
    overdue_principal: Decimal = sa.Column(Money, nullable=False)
    interest: Decimal = sa.Column(Money, nullable=False)
    penalty_fees: Decimal = sa.Column(Money, nullable=False)
    missed_installments: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    installment_amount: Decimal | None = sa.Column(Money, nullable=True)
    days_past_due: int = sa.Column(sa.Integer, nullable=False)
    status: str = sa.Column(
        sa.String(20), nullable=False, default="overdue", server_default="overdue"
    )
    collections_hold: bool = sa.Column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    broken_plans: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)

    debtor: Debtor = relationship("Debtor", back_populates="accounts", lazy="raise")


class VerificationAttempt(Base):
    """One identity check in a conversation, successful or not."""

    __tablename__ = "verification_attempts"

    id: int = sa.Column(sa.Integer, primary_key=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    #: The debtor the details pointed at, if name or mobile matched one.
    debtor_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="SET NULL"), nullable=True, index=True
    )
    succeeded: bool = sa.Column(sa.Boolean, nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)


class VerificationLock(Base):
    """Identity checks refused for a conversation (and a debtor) until `locked_until`."""

    __tablename__ = "verification_locks"

    id: int = sa.Column(sa.Integer, primary_key=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    debtor_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="SET NULL"), nullable=True, index=True
    )
    locked_until: datetime = sa.Column(UTCDateTime, nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


class VerificationProgress(Base):
    """The ID suffix and mobile a conversation gave so far, encrypted, until `expires_at`.

    The tracker store keeps only masked forms, so the pieces given over several
    messages wait here for the check (`bot.store.verification_progress`).
    """

    __tablename__ = "verification_progress"

    conversation_id: str = sa.Column(sa.String(255), primary_key=True)
    #: AES-GCM ciphertexts (nonce first, base64), or None while not given.
    id_last4: str | None = sa.Column(sa.String(200), nullable=True)
    phone: str | None = sa.Column(sa.String(200), nullable=True)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False, index=True)


class AuditLog(Base):
    """Append-only record of what was done; the database refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: int = sa.Column(sa.Integer, primary_key=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    actor: str = sa.Column(sa.String(100), nullable=False)
    action: str = sa.Column(sa.String(64), nullable=False, index=True)
    conversation_id: str | None = sa.Column(sa.String(255), nullable=True, index=True)
    # No foreign key: the log must outlive anything it mentions.
    debtor_id: int | None = sa.Column(sa.Integer, nullable=True, index=True)
    #: JSON text.
    details: str = sa.Column(sa.Text, nullable=False, default="{}")


class AuditPublication(Base):
    """An audit entry `bot.store.audit_relay` published to the message broker (confirmed)."""

    __tablename__ = "audit_publications"

    #: No foreign key, like the log itself: it would make `TRUNCATE audit_log` fail with a
    #: foreign-key error before the append-only trigger can refuse it.
    audit_id: int = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    published_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or remove an audit entry."""


@event.listens_for(AuditLog, "before_update")
def _refuse_update(mapper: Any, connection: Any, target: AuditLog) -> None:
    raise AppendOnlyError("audit_log is append-only")


@event.listens_for(AuditLog, "before_delete")
def _refuse_delete(mapper: Any, connection: Any, target: AuditLog) -> None:
    raise AppendOnlyError("audit_log is append-only")


class Agreement(Base):
    """A repayment plan or promise the debtor explicitly confirmed, with its terms."""

    __tablename__ = "agreements"
    __table_args__ = (
        sa.CheckConstraint(
            "plan IN ('personalized_installment', 'loan_extension', 'fee_waiver',"
            " 'lump_sum_settlement', 'promise_to_pay')",
            name="plan",
        ),
        sa.CheckConstraint(
            "months >= 1 AND months <= 60 AND monthly_amount > 0 AND total_payable > 0"
            " AND amount_waived >= 0",
            name="terms",
        ),
        sa.CheckConstraint("first_due <= last_due", name="dates"),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'broken', 'replaced')", name="status"
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: What the debtor is told and quotes back, e.g. `XS20261128-4F7A2C`.
    reference: str = sa.Column(sa.String(32), nullable=False, unique=True)
    #: The offer the debtor confirmed: a second confirmation of it records nothing more.
    offer_id: str = sa.Column(sa.String(64), nullable=False, unique=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    account_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    plan: str = sa.Column(sa.String(32), nullable=False)
    currency: str = sa.Column(sa.String(3), nullable=False)
    monthly_amount: Decimal = sa.Column(Money, nullable=False)
    months: int = sa.Column(sa.Integer, nullable=False)
    total_payable: Decimal = sa.Column(Money, nullable=False)
    amount_waived: Decimal = sa.Column(Money, nullable=False)
    first_due: date = sa.Column(sa.Date, nullable=False)
    last_due: date = sa.Column(sa.Date, nullable=False)
    #: JSON text: the offer as shown, the account figures and the circumstances.
    terms: str = sa.Column(sa.Text, nullable=False)
    status: str = sa.Column(
        sa.String(20), nullable=False, default="active", server_default="active"
    )
    #: The (Beijing) day the daily sweep completed or broke it.
    ended_on: date | None = sa.Column(sa.Date, nullable=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)

    installments: list[AgreementInstallment] = relationship(
        "AgreementInstallment", order_by="AgreementInstallment.number", lazy="raise"
    )


class AgreementInstallment(Base):
    """One payment of an agreement's schedule."""

    __tablename__ = "agreement_installments"
    __table_args__ = (
        sa.UniqueConstraint("agreement_id", "number", name="uq_agreement_installments_number"),
        sa.CheckConstraint("number >= 1 AND amount > 0", name="installment"),
        sa.CheckConstraint("paid_amount >= 0 AND paid_amount <= amount", name="paid"),
        sa.CheckConstraint("status IN ('due', 'paid', 'late')", name="status"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    agreement_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("agreements.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: int = sa.Column(sa.Integer, nullable=False)
    due_date: date = sa.Column(sa.Date, nullable=False)
    amount: Decimal = sa.Column(Money, nullable=False)
    #: What the daily sweep applied to it so far (`payment_allocations`).
    paid_amount: Decimal = sa.Column(Money, nullable=False, default=Decimal(0), server_default="0")
    status: str = sa.Column(sa.String(10), nullable=False, default="due", server_default="due")


class NegotiationProposal(Base):
    """A case beyond the assistant's authority, prepared for a human negotiator."""

    __tablename__ = "negotiation_proposals"

    id: int = sa.Column(sa.Integer, primary_key=True)
    reference: str = sa.Column(sa.String(32), nullable=False, unique=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    account_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    reason: str = sa.Column(sa.String(64), nullable=False)
    #: JSON text: account figures, circumstances, the draft plan and why it needs a person.
    details: str = sa.Column(sa.Text, nullable=False)
    status: str = sa.Column(
        sa.String(20), nullable=False, default="pending", server_default="pending"
    )
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StaffMember(Base):
    """A negotiator or supervisor who signs in to the console."""

    __tablename__ = "staff_members"
    __table_args__ = (sa.CheckConstraint(_in("role", STAFF_ROLES), name="role"),)

    id: int = sa.Column(sa.Integer, primary_key=True)
    username: str = sa.Column(sa.String(64), nullable=False, unique=True)
    display_name: str = sa.Column(sa.String(100), nullable=False)
    #: An argon2id hash (PHC string); never the password.
    password_hash: str = sa.Column(sa.String(255), nullable=False)
    role: str = sa.Column(sa.String(20), nullable=False)
    active: bool = sa.Column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


class RevokedSession(Base):
    """A console session signed out before its cookie expires; the cookie no longer works."""

    __tablename__ = "staff_revoked_sessions"

    session_id: str = sa.Column(sa.String(64), primary_key=True)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False, index=True)


class SignInFailure(Base):
    """A failed console sign-in, counted per user name and per address to rate-limit."""

    __tablename__ = "staff_sign_in_failures"

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: `user:<name>` or `addr:<remote address>`.
    key: str = sa.Column(sa.String(300), nullable=False, index=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)


class HandoffCase(Base):
    """A conversation handed to a human negotiator, from waiting to closed."""

    __tablename__ = "handoff_cases"
    __table_args__ = (
        sa.CheckConstraint(_in("reason", HANDOFF_REASONS), name="reason"),
        sa.CheckConstraint(_in("status", HANDOFF_STATUSES), name="status"),
        sa.CheckConstraint(
            f"outcome IS NULL OR {_in('outcome', HANDOFF_OUTCOMES)}", name="outcome"
        ),
        sa.CheckConstraint("priority >= 1 AND priority <= 9", name="priority"),
        # At most one open case per conversation, on every database.
        sa.Index(
            "uq_handoff_cases_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        ),
        sa.Index("ix_handoff_cases_queue", "status", "priority", "created_at"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: What the debtor and staff quote, e.g. `RG20261129-4F7A2C`.
    reference: str = sa.Column(sa.String(32), nullable=False, unique=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    #: The Rasa input channel the debtor writes on (`rest`, `socketio`, `wechat`).
    channel: str = sa.Column(sa.String(64), nullable=False)
    debtor_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    account_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=True
    )
    reason: str = sa.Column(sa.String(32), nullable=False)
    #: For a complaint: what it is about (`collection_conduct`, `fees`, ...).
    category: str | None = sa.Column(sa.String(32), nullable=True)
    #: 1 is served first (distress).
    priority: int = sa.Column(sa.Integer, nullable=False)
    #: A dispute in this case put the account's collection on hold.
    holds_collection: bool = sa.Column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    #: JSON text: account figures, circumstances, offers and answers, the proposal.
    summary: str = sa.Column(sa.Text, nullable=False)
    status: str = sa.Column(
        sa.String(20), nullable=False, default="waiting", server_default="waiting"
    )
    staff_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("staff_members.id", ondelete="RESTRICT"), nullable=True
    )
    outcome: str | None = sa.Column(sa.String(32), nullable=True)
    note: str | None = sa.Column(sa.Text, nullable=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    claimed_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    closed_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    #: When the assistant answered the conversation again after the case closed.
    resumed_at: datetime | None = sa.Column(UTCDateTime, nullable=True)


class CollectionsReferral(Base):
    """A verified debtor's account referred to the collections department."""

    __tablename__ = "collections_referrals"
    __table_args__ = (
        sa.CheckConstraint(_in("reason", REFERRAL_REASONS), name="reason"),
        sa.CheckConstraint("status IN ('queued', 'acknowledged')", name="status"),
        # A debtor is queued once per conversation at a time, on every database.
        sa.Index(
            "uq_collections_referrals_queued",
            "conversation_id",
            "debtor_id",
            unique=True,
            sqlite_where=sa.text("status = 'queued'"),
            postgresql_where=sa.text("status = 'queued'"),
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    reference: str = sa.Column(sa.String(32), nullable=False, unique=True)
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    channel: str = sa.Column(sa.String(64), nullable=False)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    account_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=True
    )
    reason: str = sa.Column(sa.String(32), nullable=False)
    summary: str = sa.Column(sa.Text, nullable=False)
    status: str = sa.Column(
        sa.String(20), nullable=False, default="queued", server_default="queued"
    )
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    acknowledged_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    staff_id: int | None = sa.Column(
        sa.Integer, sa.ForeignKey("staff_members.id", ondelete="RESTRICT"), nullable=True
    )
