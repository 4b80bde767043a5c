"""Tables of reminders: the outbox, the notices of ended plans, one active agreement per account.

On the same `Base` as `bot.store.models`; importing this module registers the
tables (and the partial unique index on `agreements`) in `Base.metadata`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from bot.domain.reminders import REMINDER_KINDS
from bot.store.columns import Money, UTCDateTime, utcnow
from bot.store.models import Agreement, Base

#: `queued`: to send from `send_after` (web chat and REST: shown at the next visit);
#: `deferred`: it fell in quiet hours and waits until `send_after`, the morning;
#: `sent`: delivered; `failed`: given up, after the policy's attempts or a refusal
#: that no retry changes.
REMINDER_STATUSES = ("queued", "deferred", "sent", "failed")
REMINDER_CHANNELS = ("wechat", "webchat", "rest")
#: How a reminder was delivered: WeChat's customer-service or template message
#: API, or shown in the conversation at the debtor's next visit.
REMINDER_ROUTES = ("custom", "template", "visit")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Reminder(Base):
    """One reminder or notice to a debtor, from queued to sent (or failed)."""

    __tablename__ = "reminders"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", REMINDER_KINDS), name="kind"),
        sa.CheckConstraint(_in("status", REMINDER_STATUSES), name="status"),
        sa.CheckConstraint(_in("channel", REMINDER_CHANNELS), name="channel"),
        sa.CheckConstraint(f"via IS NULL OR {_in('via', REMINDER_ROUTES)}", name="via"),
        sa.CheckConstraint("attempts >= 0", name="attempts"),
        sa.Index("ix_reminders_outbox", "status", "channel", "send_after"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    #: What it is about, once: `installment:<id>`, `promise:<installment id>`,
    #: `plan_ended:<agreement id>`. Queuing the same thing again adds nothing.
    key: str = sa.Column(sa.String(64), nullable=False, unique=True)
    kind: str = sa.Column(sa.String(20), nullable=False)
    debtor_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("debtors.id", ondelete="CASCADE"), nullable=False, index=True
    )
    agreement_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("agreements.id", ondelete="CASCADE"), nullable=False, index=True
    )
    #: The conversation it goes to: the debtor's last verified one.
    conversation_id: str = sa.Column(sa.String(255), nullable=False, index=True)
    channel: str = sa.Column(sa.String(16), nullable=False)
    #: The due date and the amount still owed on it (a notice: the day the plan ended).
    due_on: date = sa.Column(sa.Date, nullable=False)
    amount: Decimal | None = sa.Column(Money, nullable=True)
    currency: str = sa.Column(sa.String(3), nullable=False)
    status: str = sa.Column(sa.String(12), nullable=False)
    send_after: datetime = sa.Column(UTCDateTime, nullable=False)
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    #: Why the last attempt failed (an error code, never the text sent).
    last_error: str | None = sa.Column(sa.String(200), nullable=True)
    via: str | None = sa.Column(sa.String(12), nullable=True)
    sent_at: datetime | None = sa.Column(UTCDateTime, nullable=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


class PlanEndNotice(Base):
    """A broken plan the debtor was told about in a conversation (once)."""

    __tablename__ = "plan_end_notices"

    agreement_id: int = sa.Column(
        sa.Integer, sa.ForeignKey("agreements.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: str = sa.Column(sa.String(255), nullable=False)
    told_at: datetime = sa.Column(UTCDateTime, nullable=False, default=utcnow)


#: At most one active agreement (or promise) per account, on every database.
ONE_ACTIVE_AGREEMENT = sa.Index(
    "uq_agreements_active_account",
    Agreement.__table__.c.account_id,
    unique=True,
    sqlite_where=sa.text("status = 'active'"),
    postgresql_where=sa.text("status = 'active'"),
)
