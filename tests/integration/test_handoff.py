"""Handoff cases (`bot.store.cases`), the dispute holds they put (`bot.store.holds`) and
collections referrals (`bot.store.referrals`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.policy import DEFAULT_POLICY_PATH, load_policy
from bot.store import audit
from bot.store.cases import (
    OpenedCase,
    claim_case,
    close_case,
    get_case,
    open_case,
    open_case_of,
    queue,
)
from bot.store.engine import Database
from bot.store.models import (
    Account,
    Agreement,
    CollectionsReferral,
    Debtor,
    HandoffCase,
    StaffMember,
)
from bot.store.referrals import acknowledge_referral, refer_to_collections, referrals
from bot.store.worklist import CaseError

ESCALATION = load_policy(DEFAULT_POLICY_PATH).escalation
BEIJING = ZoneInfo("Asia/Shanghai")
CASE_REFERENCE = re.compile(r"RG(\d{8})-[0-9A-F]{6}")
REFERRAL_REFERENCE = re.compile(r"CS(\d{8})-[0-9A-F]{6}")
ZHANG_WEI_MOBILE = "13800138000"
WANG_FANG_MOBILE = "13700137002"


# --- helpers -------------------------------------------------------------------------------


async def debtor_and_account(db: Database, mobile: str = ZHANG_WEI_MOBILE) -> tuple[int, int]:
    """The seeded debtor with this mobile, and their (only) account."""
    async with db.session() as session:
        row = (
            await session.execute(
                sa.select(Debtor.id, Account.id)
                .join(Account, Account.debtor_id == Debtor.id)
                .where(Debtor.mobile == mobile)
            )
        ).one()
    return int(row[0]), int(row[1])


async def add_staff(db: Database, username: str, role: str = "negotiator") -> StaffMember:
    staff = StaffMember(
        username=username,
        display_name=f"{username} 的名字",
        password_hash="not-a-real-hash",
        role=role,
    )
    async with db.session() as session:
        session.add(staff)
        await session.commit()
    return staff


async def hold_of(db: Database, account_id: int) -> bool:
    async with db.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return bool(account.collections_hold)


async def case_rows(db: Database, conversation_id: str) -> list[HandoffCase]:
    async with db.session() as session:
        return list(
            (
                await session.execute(
                    sa.select(HandoffCase)
                    .where(HandoffCase.conversation_id == conversation_id)
                    .order_by(HandoffCase.id)
                )
            )
            .scalars()
            .all()
        )


async def actions_of(db: Database, conversation_id: str) -> list[str]:
    return [entry.action for entry in await audit.entries(db, conversation_id=conversation_id)]


async def open_simple(
    db: Database,
    conversation_id: str,
    reason: str = "request_human",
    summary: dict[str, Any] | None = None,
    **more: Any,
) -> OpenedCase:
    return await open_case(
        db,
        conversation_id=conversation_id,
        channel="rest",
        reason=reason,
        summary=summary or {},
        escalation=ESCALATION,
        **more,
    )


def both_read_before_either_writes(monkeypatch: pytest.MonkeyPatch, table: sa.Table) -> None:
    """Make two concurrent calls both read `table` before either of them writes.

    Without this, whether the calls interleave depends on connection timing.
    A call that never arrives (e.g. one blocked by a lock) is waited for 2 s at most.
    """
    arrived = 0
    both = asyncio.Event()
    original = AsyncSession.execute

    async def execute(self: AsyncSession, statement: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal arrived
        result = await original(self, statement, *args, **kwargs)
        if (
            arrived < 2
            and isinstance(statement, sa.sql.Select)
            and table in statement.get_final_froms()
        ):
            arrived += 1
            if arrived == 2:
                both.set()
            try:
                await asyncio.wait_for(both.wait(), 2)
            except asyncio.TimeoutError:
                pass
        return result

    monkeypatch.setattr(AsyncSession, "execute", execute)


def today_beijing() -> str:
    return f"{datetime.now(BEIJING):%Y%m%d}"


# --- opening -------------------------------------------------------------------------------


async def test_open_case_creates_a_waiting_case(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    summary = {
        "verified": True,
        "overdue_total": Decimal("23560.00"),
        "circumstances": {"monthly_income": "4000.00"},
        "words": "我想找人工",
    }
    before = today_beijing()
    opened = await open_simple(
        db, "c-open", "request_human", summary, debtor_id=debtor_id, account_id=account_id
    )
    assert opened.created is True
    assert opened.priority == ESCALATION.priorities["request_human"] == 4
    match = CASE_REFERENCE.fullmatch(opened.reference)
    assert match is not None, opened.reference
    assert match.group(1) in {before, today_beijing()}

    view = await get_case(db, opened.id)
    assert view is not None
    assert (view.reference, view.conversation_id, view.channel) == (
        opened.reference,
        "c-open",
        "rest",
    )
    assert (view.debtor_id, view.account_id, view.reason, view.category) == (
        debtor_id,
        account_id,
        "request_human",
        None,
    )
    assert (view.status, view.priority, view.staff_id, view.staff_name) == (
        "waiting",
        4,
        None,
        None,
    )
    assert (view.outcome, view.note, view.claimed_at, view.closed_at) == (None, None, None, None)
    assert view.created_at.tzinfo is not None
    assert abs(view.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    # JSON round trip: Decimal amounts come back as strings, the rest unchanged.
    assert dict(view.summary) == {
        "verified": True,
        "overdue_total": "23560.00",
        "circumstances": {"monthly_income": "4000.00"},
        "words": "我想找人工",
    }
    assert view.to_dict()["created_at"] == view.created_at.isoformat()
    assert view.to_dict()["claimed_at"] is None
    # A request for a person puts no hold on the account.
    assert await hold_of(db, account_id) is False

    [entry] = await audit.entries(db, conversation_id="c-open")
    assert (entry.actor, entry.action, entry.debtor_id) == ("bot", "handoff_opened", debtor_id)
    assert dict(entry.details) == {
        "reference": opened.reference,
        "reason": "request_human",
        "priority": 4,
        "category": None,
        "account_id": account_id,
    }
    assert await open_case_of(db, "c-open") == view
    assert await open_case_of(db, "another-conversation") is None


async def test_opening_again_returns_the_open_case_raised_to_the_more_urgent_reason(
    db: Database,
) -> None:
    first = await open_simple(db, "c-again", "request_human", {"a": 1, "b": "old"})
    same = await open_simple(db, "c-again", "repeated_fallback", {"b": "new"})
    assert (same.id, same.reference, same.priority, same.created) == (
        first.id,
        first.reference,
        4,
        False,
    )
    urgent = await open_simple(db, "c-again", "distress", {"c": Decimal("1.50")})
    assert (urgent.id, urgent.reference, urgent.priority, urgent.created) == (
        first.id,
        first.reference,
        1,
        False,
    )
    [row] = await case_rows(db, "c-again")
    assert (row.reason, row.priority, row.status) == ("distress", 1, "waiting")
    assert json.loads(row.summary) == {"a": 1, "b": "new", "c": "1.50"}
    # A less urgent reason afterwards changes neither priority nor reason.
    calmer = await open_simple(db, "c-again", "complaint", {}, category="fees")
    assert calmer.priority == 1
    [row] = await case_rows(db, "c-again")
    assert (row.reason, row.priority, row.category) == ("distress", 1, None)
    assert await actions_of(db, "c-again") == [
        "handoff_opened",
        "handoff_updated",
        "handoff_updated",
        "handoff_updated",
    ]


async def test_a_later_open_fills_in_the_debtor_and_account(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    await open_simple(db, "c-fill", "request_human")
    await open_simple(db, "c-fill", "request_human", debtor_id=debtor_id, account_id=account_id)
    [row] = await case_rows(db, "c-fill")
    assert (row.debtor_id, row.account_id) == (debtor_id, account_id)


async def test_a_dispute_puts_the_account_on_hold_in_the_same_call(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    assert await hold_of(db, account_id) is False
    opened = await open_simple(
        db,
        "c-dispute",
        "dispute",
        {"debtor_words": "这笔钱不是我欠的"},
        debtor_id=debtor_id,
        account_id=account_id,
    )
    assert opened.priority == 2
    assert await hold_of(db, account_id) is True
    # A dispute without an account (unverified) holds nothing.
    _, other_account = await debtor_and_account(db, WANG_FANG_MOBILE)
    await open_simple(db, "c-dispute-unverified", "dispute")
    assert await hold_of(db, other_account) is False


async def test_two_concurrent_opens_leave_one_open_case(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_read_before_either_writes(monkeypatch, HandoffCase.__table__)
    results = await asyncio.gather(
        open_simple(db, "c-race", "request_human", {"first": True}),
        open_simple(db, "c-race", "distress", {"second": True}),
    )
    assert sorted(result.created for result in results) == [False, True]
    assert results[0].id == results[1].id
    assert results[0].reference == results[1].reference
    [row] = await case_rows(db, "c-race")
    assert row.status == "waiting"
    assert (row.reason, row.priority) == ("distress", 1)
    assert json.loads(row.summary) == {"first": True, "second": True}
    assert sorted(await actions_of(db, "c-race")) == ["handoff_opened", "handoff_updated"]


async def test_the_database_refuses_a_second_open_case_for_a_conversation(db: Database) -> None:
    """The partial unique index itself, past the service's own check."""
    opened = await open_simple(db, "c-index", "request_human")
    with pytest.raises(sa.exc.IntegrityError):
        async with db.session() as session:
            session.add(
                HandoffCase(
                    reference="RG20000101-000000",
                    conversation_id="c-index",
                    channel="rest",
                    reason="distress",
                    priority=1,
                    summary="{}",
                )
            )
            await session.commit()
    assert [row.id for row in await case_rows(db, "c-index")] == [opened.id]


# --- the queue -----------------------------------------------------------------------------


async def _set_created(db: Database, case_id: int, created: datetime) -> None:
    async with db.session() as session:
        case = await session.get(HandoffCase, case_id)
        assert case is not None
        case.created_at = created
        await session.commit()


async def test_queue_is_most_urgent_first_then_oldest(db: Database) -> None:
    start = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
    plan = [  # conversation, reason, minutes after start
        ("q-new-human", "request_human", 30),
        ("q-old-human", "request_human", 0),
        ("q-complaint", "complaint", 20),
        ("q-distress", "distress", 40),
        ("q-dispute", "dispute", 10),
        ("q-closed", "distress", 5),
    ]
    ids = {}
    for conversation, reason, minutes in plan:
        opened = await open_simple(db, conversation, reason)
        ids[conversation] = opened.id
        await _set_created(db, opened.id, start + timedelta(minutes=minutes))
    supervisor = await add_staff(db, "boss", "supervisor")
    await close_case(db, ids["q-closed"], supervisor, "other", "")
    claimed = await claim_case(db, ids["q-old-human"], supervisor)
    assert claimed.status == "claimed"

    waiting_and_claimed = await queue(db)
    assert [case.conversation_id for case in waiting_and_claimed] == [
        "q-distress",
        "q-dispute",
        "q-complaint",
        "q-old-human",
        "q-new-human",
    ]
    assert waiting_and_claimed[3].staff_name == "boss 的名字"
    assert [case.conversation_id for case in await queue(db, statuses=("waiting",))] == [
        "q-distress",
        "q-dispute",
        "q-complaint",
        "q-new-human",
    ]
    assert [case.conversation_id for case in await queue(db, statuses=("closed",))] == ["q-closed"]


# --- claiming ------------------------------------------------------------------------------


async def test_claim_gives_a_waiting_case_to_one_staff_member(db: Database) -> None:
    alice = await add_staff(db, "alice")
    bob = await add_staff(db, "bob")
    opened = await open_simple(db, "c-claim")
    view = await claim_case(db, opened.id, alice)
    assert (view.status, view.staff_id, view.staff_name) == ("claimed", alice.id, "alice 的名字")
    assert view.claimed_at is not None
    assert abs(view.claimed_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    with pytest.raises(CaseError, match="^claim_lost"):
        await claim_case(db, opened.id, bob)
    with pytest.raises(CaseError, match="^claim_lost"):
        await claim_case(db, opened.id, alice)
    with pytest.raises(CaseError, match="^claim_lost"):
        await claim_case(db, opened.id + 1000, alice)
    after = await get_case(db, opened.id)
    assert after is not None
    assert (after.status, after.staff_id, after.claimed_at) == (
        "claimed",
        alice.id,
        view.claimed_at,
    )
    entries = await audit.entries(db, conversation_id="c-claim")
    assert [(e.actor, e.action) for e in entries] == [
        ("bot", "handoff_opened"),
        ("staff:alice", "handoff_claimed"),
    ]
    assert dict(entries[1].details) == {"reference": opened.reference}


async def test_two_concurrent_claims_one_wins(db: Database) -> None:
    alice = await add_staff(db, "alice")
    bob = await add_staff(db, "bob")
    opened = await open_simple(db, "c-claim-race")
    results = await asyncio.gather(
        claim_case(db, opened.id, alice), claim_case(db, opened.id, bob), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], CaseError)
    assert losses[0].code == "claim_lost"
    view = await get_case(db, opened.id)
    assert view is not None
    assert view.status == "claimed"
    assert view.staff_id == wins[0].staff_id
    assert view.staff_id in {alice.id, bob.id}
    assert (await actions_of(db, "c-claim-race")).count("handoff_claimed") == 1


# --- closing -------------------------------------------------------------------------------


async def test_two_concurrent_closes_one_takes_effect(db: Database) -> None:
    alice = await add_staff(db, "alice")
    opened = await open_simple(db, "c-close-race")
    await claim_case(db, opened.id, alice)
    results = await asyncio.gather(
        close_case(db, opened.id, alice, "plan_agreed", "first"),
        close_case(db, opened.id, alice, "no_contact", "second"),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], CaseError)
    assert losses[0].code == "closed_or_absent"
    view = await get_case(db, opened.id)
    assert view is not None
    assert (view.outcome, view.note) == (wins[0].outcome, wins[0].note)
    assert (await actions_of(db, "c-close-race")).count("handoff_closed") == 1


async def test_the_holder_closes_a_case(db: Database) -> None:
    alice = await add_staff(db, "alice")
    bob = await add_staff(db, "bob")
    opened = await open_simple(db, "c-close")
    claimed = await claim_case(db, opened.id, alice)
    with pytest.raises(CaseError, match="^not_holder"):
        await close_case(db, opened.id, bob, "other", "不是我的案件")
    with pytest.raises(CaseError, match="^unknown_outcome"):
        await close_case(db, opened.id, alice, "made_up_outcome", "")
    view = await close_case(db, opened.id, alice, "promise_to_pay", "承诺月底还款")
    assert (view.status, view.outcome, view.note) == ("closed", "promise_to_pay", "承诺月底还款")
    assert (view.staff_id, view.claimed_at) == (alice.id, claimed.claimed_at)
    assert view.closed_at is not None
    assert abs(view.closed_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert view.to_dict()["closed_at"] == view.closed_at.isoformat()
    with pytest.raises(CaseError, match="^closed_or_absent"):
        await close_case(db, opened.id, alice, "other", "again")
    entries = await audit.entries(db, conversation_id="c-close")
    assert [(e.actor, e.action) for e in entries] == [
        ("bot", "handoff_opened"),
        ("staff:alice", "handoff_claimed"),
        ("staff:alice", "handoff_closed"),
    ]
    assert dict(entries[-1].details) == {
        "reference": opened.reference,
        "outcome": "promise_to_pay",
        "holds_lifted": [],
    }
    assert await open_case_of(db, "c-close") is None
    assert await queue(db) == []
    # The conversation can be handed off again: a new case, a new reference.
    again = await open_simple(db, "c-close", "distress")
    assert again.created is True
    assert (again.id, again.reference) != (opened.id, opened.reference)
    assert [row.status for row in await case_rows(db, "c-close")] == ["closed", "waiting"]


async def test_a_negotiator_cannot_close_a_waiting_case(db: Database) -> None:
    alice = await add_staff(db, "alice")
    opened = await open_simple(db, "c-waiting")
    with pytest.raises(CaseError, match="^not_holder"):
        await close_case(db, opened.id, alice, "other", "")
    view = await get_case(db, opened.id)
    assert view is not None and view.status == "waiting"
    with pytest.raises(CaseError, match="^closed_or_absent"):
        await close_case(db, opened.id + 1000, alice, "other", "")


async def test_a_supervisor_closes_any_open_case(db: Database) -> None:
    alice = await add_staff(db, "alice")
    boss = await add_staff(db, "boss", "supervisor")
    unclaimed = await open_simple(db, "c-sup-waiting")
    view = await close_case(db, unclaimed.id, boss, "no_contact", "无人应答")
    assert (view.status, view.outcome, view.staff_id, view.staff_name) == (
        "closed",
        "no_contact",
        boss.id,
        "boss 的名字",
    )
    assert view.claimed_at == view.closed_at
    held = await open_simple(db, "c-sup-held")
    await claim_case(db, held.id, alice)
    view = await close_case(db, held.id, boss, "other", "主管结案")
    assert (view.status, view.staff_id, view.outcome) == ("closed", alice.id, "other")
    entries = await audit.entries(db, conversation_id="c-sup-held")
    assert (entries[-1].actor, entries[-1].action) == ("staff:boss", "handoff_closed")


@pytest.mark.parametrize(
    ("outcome", "held_after"),
    [("dispute_logged", True), ("other", False), ("plan_agreed", False)],
)
async def test_closing_a_dispute_lifts_the_hold_unless_it_stays_logged(
    db: Database, outcome: str, held_after: bool
) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    alice = await add_staff(db, "alice")
    opened = await open_simple(db, "c-hold", "dispute", debtor_id=debtor_id, account_id=account_id)
    await claim_case(db, opened.id, alice)
    assert await hold_of(db, account_id) is True
    await close_case(db, opened.id, alice, outcome, "")
    assert await hold_of(db, account_id) is held_after
    entries = await audit.entries(db, conversation_id="c-hold")
    assert entries[-1].details["holds_lifted"] == ([] if held_after else [account_id])


async def test_a_dispute_holds_every_account_it_names_and_another_dispute_keeps_its_hold(
    db: Database,
) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    boss = await add_staff(db, "boss", "supervisor")
    opened = await open_case(
        db,
        conversation_id="c-two",
        channel="rest",
        reason="dispute",
        summary={},
        escalation=ESCALATION,
        debtor_id=debtor_id,
        account_id=account_id,
        hold_accounts=(account_id,),
    )
    # The same account disputed in another conversation (another channel, say).
    other = await open_case(
        db,
        conversation_id="c-two-wechat",
        channel="wechat",
        reason="dispute",
        summary={},
        escalation=ESCALATION,
        debtor_id=debtor_id,
        hold_accounts=(account_id,),
    )
    assert (await get_case(db, opened.id)).summary["held_accounts"] == [account_id]  # type: ignore[union-attr]
    await close_case(db, opened.id, boss, "other", "")
    assert await hold_of(db, account_id) is True  # the other dispute still holds it
    await close_case(db, other.id, boss, "dispute_logged", "")
    assert await hold_of(db, account_id) is True  # staff are investigating it


async def test_an_active_agreement_keeps_the_hold_after_a_dispute(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    boss = await add_staff(db, "boss", "supervisor")
    opened = await open_simple(
        db, "c-agreed", "dispute", debtor_id=debtor_id, account_id=account_id
    )
    async with db.session() as session:
        session.add(
            Agreement(
                reference="XS20260302-000001",
                offer_id="offer-test-1",
                conversation_id="c-agreed",
                debtor_id=debtor_id,
                account_id=account_id,
                plan="personalized_installment",
                currency="CNY",
                monthly_amount=Decimal("1000.00"),
                months=2,
                total_payable=Decimal("2000.00"),
                amount_waived=Decimal("0.00"),
                first_due=date(2026, 4, 1),
                last_due=date(2026, 5, 1),
                terms="{}",
            )
        )
        await session.commit()
    view = await close_case(db, opened.id, boss, "plan_agreed", "")
    assert view.outcome == "plan_agreed"
    assert await hold_of(db, account_id) is True
    entries = await audit.entries(db, conversation_id="c-agreed")
    assert entries[-1].details["holds_lifted"] == []


async def test_a_dispute_added_to_an_open_request_holds_and_is_lifted_on_close(
    db: Database,
) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    boss = await add_staff(db, "boss", "supervisor")
    opened = await open_simple(db, "c-later-dispute", "request_human", debtor_id=debtor_id)
    again = await open_simple(
        db, "c-later-dispute", "dispute", debtor_id=debtor_id, account_id=account_id
    )
    assert (again.id, again.priority, again.created) == (opened.id, 2, False)
    [row] = await case_rows(db, "c-later-dispute")
    assert (row.reason, row.account_id) == ("dispute", account_id)
    assert await hold_of(db, account_id) is True
    await close_case(db, opened.id, boss, "other", "")
    assert await hold_of(db, account_id) is False


@pytest.mark.parametrize("reasons", [("dispute", "distress"), ("distress", "dispute")])
async def test_a_dispute_merged_with_distress_lifts_its_hold_when_resolved(
    db: Database, reasons: tuple[str, str]
) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    boss = await add_staff(db, "boss", "supervisor")
    for reason in reasons:
        opened = await open_simple(
            db, "c-dispute-distress", reason, debtor_id=debtor_id, account_id=account_id
        )
    assert await hold_of(db, account_id) is True
    await close_case(db, opened.id, boss, "plan_agreed", "已与债务人达成方案，争议已澄清")
    assert await hold_of(db, account_id) is False


# --- referrals -----------------------------------------------------------------------------


async def test_referral_to_collections_once_per_conversation(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db, WANG_FANG_MOBILE)
    other_debtor, other_account = await debtor_and_account(db)
    reference = await refer_to_collections(
        db,
        conversation_id="r-1",
        channel="rest",
        debtor_id=debtor_id,
        account_id=account_id,
        reason="refused_payment",
        summary={"overdue_total": Decimal("185700.00")},
    )
    match = REFERRAL_REFERENCE.fullmatch(reference)
    assert match is not None, reference
    again = await refer_to_collections(
        db,
        conversation_id="r-1",
        channel="rest",
        debtor_id=debtor_id,
        account_id=account_id,
        reason="declined_negotiator",
        summary={},
    )
    assert again == reference
    [entry] = await audit.entries(db, conversation_id="r-1")
    assert (entry.actor, entry.action, entry.debtor_id) == (
        "bot",
        "collections_referral",
        debtor_id,
    )
    assert dict(entry.details) == {
        "reference": reference,
        "reason": "refused_payment",
        "account_id": account_id,
    }
    second = await refer_to_collections(
        db,
        conversation_id="r-2",
        channel="socketio",
        debtor_id=other_debtor,
        account_id=other_account,
        reason="declined_negotiator",
        summary={},
    )
    async with db.session() as session:
        first_id = (
            await session.execute(
                sa.select(CollectionsReferral.id).where(CollectionsReferral.reference == reference)
            )
        ).scalar_one()
    listed = await referrals(db)
    assert len(listed) == 2
    first = next(r for r in listed if r.reference == reference)
    assert (first.conversation_id, first.channel, first.debtor_id, first.account_id) == (
        "r-1",
        "rest",
        debtor_id,
        account_id,
    )
    assert (first.reason, first.status, first.acknowledged_at) == (
        "refused_payment",
        "queued",
        None,
    )
    assert dict(first.summary) == {"overdue_total": "185700.00"}
    assert first.to_dict()["acknowledged_at"] is None

    boss = await add_staff(db, "boss", "supervisor")
    await acknowledge_referral(db, first_id, boss)
    with pytest.raises(CaseError, match="^referral_handled"):
        await acknowledge_referral(db, first_id, boss)
    with pytest.raises(CaseError, match="^referral_handled"):
        await acknowledge_referral(db, first_id + 1000, boss)
    listed = await referrals(db)
    # Queued ones first, though the acknowledged one is older.
    assert [(r.reference, r.status) for r in listed] == [
        (second, "queued"),
        (reference, "acknowledged"),
    ]
    assert listed[1].acknowledged_at is not None
    entries = await audit.entries(db, conversation_id="r-1")
    assert [(e.actor, e.action) for e in entries] == [
        ("bot", "collections_referral"),
        ("staff:boss", "collections_referral_acknowledged"),
    ]
    async with db.session() as session:
        staff_id = (
            await session.execute(
                sa.select(CollectionsReferral.staff_id).where(CollectionsReferral.id == first_id)
            )
        ).scalar_one()
    assert staff_id == boss.id


async def test_a_new_referral_once_the_first_was_taken_over_and_per_debtor(
    db: Database,
) -> None:
    wang, _ = await debtor_and_account(db, WANG_FANG_MOBILE)
    zhang, _ = await debtor_and_account(db)
    boss = await add_staff(db, "boss", "supervisor")

    async def refer(debtor_id: int) -> str:
        return await refer_to_collections(
            db,
            conversation_id="r-shared-phone",
            channel="wechat",
            debtor_id=debtor_id,
            account_id=None,
            reason="refused_payment",
            summary={},
        )

    first = await refer(wang)
    assert await refer(zhang) != first  # another debtor on the same phone
    [queued] = [r for r in await referrals(db) if r.reference == first]
    await acknowledge_referral(db, queued.id, boss)
    later = await refer(wang)  # months later, after collections took the first one over
    assert later != first
    assert len([r for r in await referrals(db) if r.conversation_id == "r-shared-phone"]) == 3


async def test_closing_as_referred_to_collections_queues_a_referral(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    alice = await add_staff(db, "alice")
    opened = await open_simple(
        db, "c-refer", "request_human", debtor_id=debtor_id, account_id=account_id
    )
    await claim_case(db, opened.id, alice)
    await close_case(db, opened.id, alice, "referred_to_collections", "客户明确拒绝还款")
    [referral] = [r for r in await referrals(db) if r.conversation_id == "c-refer"]
    assert (referral.reason, referral.debtor_id, referral.account_id, referral.status) == (
        "staff_referral",
        debtor_id,
        account_id,
        "queued",
    )
    assert referral.summary["case"] == opened.reference
    assert referral.summary["note"] == "客户明确拒绝还款"


async def test_queued_referrals_are_listed_newest_first(db: Database) -> None:
    debtor_id, account_id = await debtor_and_account(db)
    references = []
    for n in range(3):
        references.append(
            await refer_to_collections(
                db,
                conversation_id=f"r-order-{n}",
                channel="rest",
                debtor_id=debtor_id,
                account_id=account_id,
                reason="refused_payment",
                summary={},
            )
        )
    start = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
    async with db.session() as session:
        for n, reference in enumerate(references):
            await session.execute(
                sa.update(CollectionsReferral)
                .where(CollectionsReferral.reference == reference)
                .values(created_at=start + timedelta(minutes=[5, 15, 10][n]))
            )
        await session.commit()
    assert [r.reference for r in await referrals(db)] == [
        references[1],
        references[2],
        references[0],
    ]


async def test_two_concurrent_referrals_of_a_conversation_make_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_read_before_either_writes(monkeypatch, CollectionsReferral.__table__)
    debtor_id, account_id = await debtor_and_account(db, WANG_FANG_MOBILE)

    def refer() -> Any:
        return refer_to_collections(
            db,
            conversation_id="r-race",
            channel="rest",
            debtor_id=debtor_id,
            account_id=account_id,
            reason="refused_payment",
            summary={},
        )

    first, second = await asyncio.gather(refer(), refer())
    assert first == second
    async with db.session() as session:
        count = (
            await session.execute(
                sa.select(sa.func.count()).where(CollectionsReferral.conversation_id == "r-race")
            )
        ).scalar_one()
    assert count == 1
    assert await refer() == first
