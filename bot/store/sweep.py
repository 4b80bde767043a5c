"""The daily sweep: payments applied to agreements, plans completed or broken, reminders queued.

For each active agreement (and promise to pay) the account's payments made
since the agreement's day are applied in due-date order (`bot.domain.payments`);
installments become `paid` or `late`; an agreement is `completed` (a promise:
kept) or `broken`. A broken one adds to the account's `broken_plans` and lifts
its `collections_hold` unless a dispute or another active agreement still holds
it; each end is audited. Then `bot.store.reminders.queue_reminders` queues the
day's reminders and notices.

Once per day: the day's run is recorded in `sweep_runs`, and a second run for
the same day changes nothing (its counts are zero). Runs on several replicas at
once take turns on a PostgreSQL advisory lock; on SQLite the payment step holds
the database's write lock.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.clock import BEIJING
from bot.domain.payments import Due, Paid, Settlement, settle
from bot.store import audit, holds
from bot.store.columns import Money
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import Account, Agreement, AgreementInstallment, utcnow
from bot.store.payment_models import Payment, PaymentAllocation, SweepRun
from bot.store.reminders import queue_reminders

SYSTEM_ACTOR = "system"
#: First key of the two-key advisory lock; the second is `sweep_runs`' oid, so that
#: databases in different schemas do not contend.
LOCK_SPACE = advisory_lock_key("bot.store.sweep")
_LOCK = "SELECT pg_advisory_lock(:space, 'sweep_runs'::regclass::oid::int)"
_UNLOCK = "SELECT pg_advisory_unlock(:space, 'sweep_runs'::regclass::oid::int)"
AGREEMENTS = Agreement.__table__
INSTALLMENTS = AgreementInstallment.__table__
PAYMENTS = Payment.__table__
ALLOCATIONS = PaymentAllocation.__table__
PROMISE = "promise_to_pay"
#: Accounts settled per round of queries (well below the databases' limits on parameters).
ACCOUNTS_PER_QUERY = 500
#: The audit action of each end, for plans and for promises.
ENDS = {
    (False, "completed"): "agreement_completed",
    (False, "broken"): "agreement_broken",
    (True, "completed"): "promise_kept",
    (True, "broken"): "promise_broken",
}


@dataclass
class SweepCounts:
    """What one run did, in the order of the JSON line it prints."""

    date: date
    installments_paid: int = 0
    installments_late: int = 0
    agreements_broken: int = 0
    agreements_completed: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    reminders_queued: int = 0
    reminders_deferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["date"] = self.date.isoformat()
        return data


@asynccontextmanager
async def _one_at_a_time(db: Database) -> AsyncIterator[None]:
    """Hold the sweep's advisory lock (PostgreSQL; waits for a run in progress)."""
    if db.dialect != "postgresql":
        yield
        return
    async with db.engine.connect() as connection:
        await connection.execute(sa.text(_LOCK), {"space": LOCK_SPACE})
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(sa.text(_UNLOCK), {"space": LOCK_SPACE})
            await connection.commit()


async def _payments(
    session: AsyncSession, account_ids: list[int], today: date
) -> dict[int, list[tuple[int, Paid]]]:
    """Per account: (payment id, payment less what ended agreements took), oldest first."""
    rows = (
        await session.execute(
            sa.select(
                PAYMENTS.c.id,
                PAYMENTS.c.account_id,
                PAYMENTS.c.reference,
                PAYMENTS.c.paid_on,
                PAYMENTS.c.amount,
            )
            .where(PAYMENTS.c.account_id.in_(account_ids), PAYMENTS.c.paid_on <= today)
            .order_by(PAYMENTS.c.paid_on, PAYMENTS.c.reference)
        )
    ).all()
    frozen = await session.execute(
        sa.select(ALLOCATIONS.c.payment_id, ALLOCATIONS.c.amount)
        .join(PAYMENTS, PAYMENTS.c.id == ALLOCATIONS.c.payment_id)
        .join(AGREEMENTS, AGREEMENTS.c.id == ALLOCATIONS.c.agreement_id)
        .where(PAYMENTS.c.account_id.in_(account_ids), AGREEMENTS.c.status != "active")
    )
    taken: dict[int, Decimal] = defaultdict(Decimal)
    for payment_id, amount in frozen:
        taken[payment_id] += amount
    found: dict[int, list[tuple[int, Paid]]] = defaultdict(list)
    for row in rows:
        free = row.amount - taken[row.id]
        if free > 0:
            found[row.account_id].append((row.id, Paid(row.reference, row.paid_on, free)))
    return found


@dataclass
class _Batch:
    """The writes of one round of accounts, made together."""

    #: Installment id -> (paid amount, status).
    installments: dict[int, tuple[Decimal, str]] = field(default_factory=dict)
    #: Agreements whose allocations are replaced, and the new rows.
    replaced: list[int] = field(default_factory=list)
    allocations: list[dict[str, Any]] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        if self.installments:
            await session.execute(
                INSTALLMENTS.update()
                .where(INSTALLMENTS.c.id == sa.bindparam("row_id"))
                .values(
                    paid_amount=sa.bindparam("paid", type_=Money()), status=sa.bindparam("state")
                ),
                [
                    {"row_id": row_id, "paid": paid, "state": state}
                    for row_id, (paid, state) in sorted(self.installments.items())
                ],
            )
        if self.replaced:
            await session.execute(
                ALLOCATIONS.delete().where(ALLOCATIONS.c.agreement_id.in_(self.replaced))
            )
        if self.allocations:
            await session.execute(ALLOCATIONS.insert(), self.allocations)


def _settle_one(
    agreement: Agreement,
    installments: list[AgreementInstallment],
    payments: list[tuple[int, Paid]],
    stored: dict[tuple[int, int], Decimal],
    today: date,
    grace_days: int,
    counts: SweepCounts,
    batch: _Batch,
) -> Settlement:
    """Apply the payments to one agreement; what changed goes into `batch`."""
    start = agreement.created_at.astimezone(BEIJING).date()
    eligible = [paid for _, paid in payments if paid.paid_on >= start]
    schedule = [Due(i.number, i.due_date, i.amount) for i in installments]
    outcome = settle(schedule, eligible, today, grace_days)
    by_number = {i.number: i for i in installments}
    for state in outcome.installments:
        row = by_number[state.number]
        if state.status == "paid" and row.status != "paid":
            counts.installments_paid += 1
        if state.status == "late" and row.status == "due":
            counts.installments_late += 1
        if (row.paid_amount, row.status) != (state.paid_amount, state.status):
            batch.installments[row.id] = (state.paid_amount, state.status)
    ids = {paid.reference: payment_id for payment_id, paid in payments}
    wanted: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for reference, number, amount in outcome.allocations:
        wanted[(ids[reference], by_number[number].id)] += amount
    if stored != dict(wanted):
        batch.replaced.append(agreement.id)
        batch.allocations += [
            {
                "payment_id": payment_id,
                "installment_id": installment_id,
                "agreement_id": agreement.id,
                "amount": amount,
            }
            for (payment_id, installment_id), amount in sorted(wanted.items())
        ]
    return outcome


async def _end_all(
    session: AsyncSession,
    ended: list[tuple[Agreement, Settlement]],
    today: date,
    counts: SweepCounts,
    disputed: set[int],
) -> None:
    """Mark agreements completed or broken, with their consequences and audit entries."""
    if not ended:
        return
    await session.execute(
        AGREEMENTS.update()
        .where(AGREEMENTS.c.id == sa.bindparam("row_id"))
        .values(status=sa.bindparam("state"), ended_on=today),
        [{"row_id": a.id, "state": outcome.state} for a, outcome in ended],
    )
    broken = sorted({a.account_id for a, outcome in ended if outcome.state == "broken"})
    held: set[int] = set()
    if broken:
        accounts = Account.__table__
        await session.execute(
            accounts.update()
            .where(accounts.c.id == sa.bindparam("row_id"))
            .values(broken_plans=accounts.c.broken_plans + 1),
            [{"row_id": a.account_id} for a, outcome in ended if outcome.state == "broken"],
        )
        # Another active agreement, or a dispute, still holds the account.
        still_agreed = await session.execute(
            sa.select(AGREEMENTS.c.account_id).where(
                AGREEMENTS.c.account_id.in_(broken), AGREEMENTS.c.status == "active"
            )
        )
        held = set(still_agreed.scalars()) | (disputed & set(broken))
        lifted = [account for account in broken if account not in held]
        if lifted:
            await session.execute(
                accounts.update().where(accounts.c.id.in_(lifted)).values(collections_hold=False)
            )
    for agreement, outcome in ended:
        promise = agreement.plan == PROMISE
        details: dict[str, Any] = {
            "reference": agreement.reference,
            "plan": agreement.plan,
            "account_id": agreement.account_id,
            "paid": outcome.paid_total,
            "total_payable": agreement.total_payable,
        }
        if outcome.state == "broken":
            details.update(
                broken_on=outcome.broken_on,
                installment=outcome.broken_by,
                hold_lifted=agreement.account_id not in held,
            )
            if promise:
                counts.promises_broken += 1
            else:
                counts.agreements_broken += 1
        else:
            details["completed_on"] = outcome.completed_on
            if promise:
                counts.promises_kept += 1
            else:
                counts.agreements_completed += 1
        await audit.record(
            session,
            SYSTEM_ACTOR,
            ENDS[(promise, outcome.state)],
            agreement.conversation_id,
            agreement.debtor_id,
            details,
        )


async def _apply_to_accounts(
    session: AsyncSession,
    accounts: list[list[Agreement]],
    today: date,
    grace_days: int,
    counts: SweepCounts,
    disputed: set[int],
) -> None:
    """Settle the active agreements of some accounts (each account's oldest first)."""
    ids = [agreement.id for agreements in accounts for agreement in agreements]
    schedules: dict[int, list[AgreementInstallment]] = defaultdict(list)
    found = await session.execute(
        sa.select(AgreementInstallment)
        .where(INSTALLMENTS.c.agreement_id.in_(ids))
        .order_by(INSTALLMENTS.c.agreement_id, INSTALLMENTS.c.number)
    )
    for installment in found.scalars():
        schedules[installment.agreement_id].append(installment)
    stored: dict[int, dict[tuple[int, int], Decimal]] = defaultdict(dict)
    rows = await session.execute(
        sa.select(
            ALLOCATIONS.c.agreement_id,
            ALLOCATIONS.c.payment_id,
            ALLOCATIONS.c.installment_id,
            ALLOCATIONS.c.amount,
        ).where(ALLOCATIONS.c.agreement_id.in_(ids))
    )
    for agreement_id, payment_id, installment_id, amount in rows:
        stored[agreement_id][(payment_id, installment_id)] = amount
    payments = await _payments(
        session, [agreements[0].account_id for agreements in accounts], today
    )
    batch = _Batch()
    ended: list[tuple[Agreement, Settlement]] = []
    for agreements in accounts:
        available = payments.get(agreements[0].account_id, [])
        for agreement in agreements:
            outcome = _settle_one(
                agreement,
                schedules[agreement.id],
                available,
                stored[agreement.id],
                today,
                grace_days,
                counts,
                batch,
            )
            # What this agreement took is not free for another on the same account.
            used: dict[str, Decimal] = defaultdict(Decimal)
            for reference, _number, amount in outcome.allocations:
                used[reference] += amount
            available = [
                (pid, Paid(p.reference, p.paid_on, p.amount - used[p.reference]))
                for pid, p in available
                if p.amount - used[p.reference] > 0
            ]
            if outcome.state != "active":
                ended.append((agreement, outcome))
    await batch.write(session)
    await _end_all(session, ended, today, counts, disputed)


async def _apply_payments(db: Database, today: date, grace_days: int, counts: SweepCounts) -> None:
    """The payment step of the day, once: nothing if the day was swept already."""
    async with db.session() as session:
        if db.dialect == "sqlite":
            # Take the write lock first: a second sweep waits here, then finds the day done.
            await session.execute(sa.text("UPDATE sweep_runs SET counts = counts WHERE 1 = 0"))
        if await session.get(SweepRun, today) is not None:
            return
        agreements = (
            (
                await session.execute(
                    sa.select(Agreement)
                    .where(AGREEMENTS.c.status == "active")
                    .order_by(AGREEMENTS.c.created_at, AGREEMENTS.c.id)
                )
            )
            .scalars()
            .all()
        )
        by_account: dict[int, list[Agreement]] = defaultdict(list)
        for agreement in agreements:
            by_account[agreement.account_id].append(agreement)
        accounts = sorted(by_account)
        disputed = await holds.disputed_accounts(session)
        for start in range(0, len(accounts), ACCOUNTS_PER_QUERY):
            chunk = accounts[start : start + ACCOUNTS_PER_QUERY]
            await _apply_to_accounts(
                session, [by_account[a] for a in chunk], today, grace_days, counts, disputed
            )
        session.add(SweepRun(day=today, counts=json.dumps(counts.to_dict())))
        await audit.record(session, SYSTEM_ACTOR, "payments_swept", details=counts.to_dict())
        await session.commit()


async def _queue_reminders(db: Database, today: date, now: datetime, counts: SweepCounts) -> None:
    """Queue the day's reminders once (again after a run that stopped before them)."""
    async with db.session() as session:
        run = await session.get(SweepRun, today)
        if run is None or run.reminders_at is not None:
            return
    queued = await queue_reminders(db, today, now)
    counts.reminders_queued, counts.reminders_deferred = queued.queued, queued.deferred
    async with db.session() as session:
        await session.execute(
            sa.update(SweepRun)
            .where(SweepRun.__table__.c.day == today)
            .values(reminders_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        await session.commit()


async def sweep(
    db: Database, today: date, grace_days: int, *, now: datetime | None = None
) -> SweepCounts:
    """Sweep `today` (a Beijing day) as of `now` (default: the current time)."""
    counts = SweepCounts(today)
    async with _one_at_a_time(db):
        await _apply_payments(db, today, grace_days, counts)
        await _queue_reminders(db, today, now or utcnow(), counts)
    return counts
