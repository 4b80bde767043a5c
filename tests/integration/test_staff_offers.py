"""Negotiators' offers in the store and through the console's API, on SQLite and PostgreSQL.

The console runs in a real aiohttp test server; Rasa is a small local server
that records the actions it is asked to run (the real one is in the end-to-end
tests).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.console.app import create_app
from bot.console.texts import OFFER_ERRORS
from bot.domain.clock import beijing_today
from bot.domain.policy import current_policy
from bot.domain.staff_offers import OfferTerms, StaffOffer, build_staff_offer, recompute
from bot.store import audit, retention_rows, staff
from bot.store import staff_offers as store
from bot.store.accounts import account_summaries
from bot.store.agreements import position
from bot.store.engine import Database
from bot.store.models import (
    Account,
    Agreement,
    AgreementInstallment,
    HandoffCase,
    NegotiationProposal,
    StaffMember,
)
from tests.support.agreements import add_agreement
from tests.support.staff import cheap_argon2
from tests.support.staff_offers import CIRCUMSTANCES, ProposalCase, proposal_case

PASSWORD = "correct horse battery"
HOSTILE = "<script>alert(1)</script>"
CONVERSATION = "rest-wang-fang"


@pytest.fixture(autouse=True)
def _cheap_argon2() -> Iterator[None]:
    with cheap_argon2():
        yield


@pytest.fixture
async def wang_fang(db: Database) -> ProposalCase:
    return await proposal_case(db, CONVERSATION, beijing_today())


@pytest.fixture
async def members(db: Database) -> dict[str, StaffMember]:
    return {
        "alice": await staff.create_staff(db, "alice", "李专员", PASSWORD, "negotiator"),
        "bob": await staff.create_staff(db, "bob", "王专员", PASSWORD, "negotiator"),
        "sam": await staff.create_staff(db, "sam", "张主管", PASSWORD, "supervisor"),
        "sue": await staff.create_staff(db, "sue", "刘主管", PASSWORD, "supervisor"),
    }


def first_due() -> date:
    return beijing_today() + timedelta(days=15)


async def _built(db: Database, case: ProposalCase, role: str, **terms: Any) -> StaffOffer:
    [summary] = [a for a in await account_summaries(db, case.debtor_id) if a.overdue_total > 0]
    values: dict[str, Any] = {"plan": "personalized_installment", "first_due": first_due()}
    result = build_staff_offer(
        OfferTerms(**(values | terms)),
        position(summary),
        CIRCUMSTANCES,
        role,
        beijing_today(),
        current_policy(),
    )
    assert isinstance(result, StaffOffer), result
    return result


async def _create(
    db: Database, case: ProposalCase, builder: StaffMember, **terms: Any
) -> store.OfferView:
    built = await _built(db, case, builder.role, **terms)
    return await store.create_offer(
        db,
        case_id=case.case_id,
        conversation_id=CONVERSATION,
        debtor_id=case.debtor_id,
        proposal_reference=case.proposal_reference,
        built=built,
        circumstances=CIRCUMSTANCES,
        builder=builder,
        today=beijing_today(),
    )


async def _rows(db: Database, model: Any, **where: Any) -> list[Any]:
    query = sa.select(model).filter_by(**where)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


# --- the store ------------------------------------------------------------------------------


async def test_an_offer_within_limits_is_approved_at_once_and_beyond_waits(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    alice = members["alice"]
    within = await _create(db, wang_fang, alice, months=36, note="亲属资助")
    assert within.status == "approved" and within.beyond == ()
    beyond = await _create(db, wang_fang, alice, months=60, waiver=Decimal("20000.00"))
    assert beyond.status == "awaiting_approval"
    assert beyond.beyond == ("waiver", "months", "interest_share")
    # One open offer per case: the first was superseded.
    assert (await store.get_offer(db, within.id)).status == "superseded"  # type: ignore[union-attr]
    assert [o.id for o in await store.awaiting_approval(db)] == [beyond.id]
    entries = [(e.actor, e.action) for e in await audit.entries(db, CONVERSATION)]
    assert ("staff:alice", "staff_offer_built") in entries
    assert ("staff:alice", "staff_offer_superseded") in entries


async def test_approval_by_a_supervisor_other_than_the_builder(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    policy = current_policy()
    sam = members["sam"]
    own = await _create(db, wang_fang, sam, months=60, waiver=Decimal("36000.00") - 300)
    assert own.status == "approved", "within a supervisor's own limits"
    offer = await _create(db, wang_fang, members["alice"], months=60, waiver=Decimal("20000.00"))
    for approver, code in ((members["alice"], "own_offer"), (members["bob"], "not_supervisor")):
        with pytest.raises(store.OfferError) as refused:
            await store.approve_offer(db, offer.id, approver, policy)
        assert refused.value.code == code
    approved = await store.approve_offer(db, offer.id, sam, policy)
    assert (approved.status, approved.approved_by) == ("approved", sam.id)
    with pytest.raises(store.OfferError) as again:
        await store.approve_offer(db, offer.id, members["sue"], policy)
    assert again.value.code == "not_awaiting"
    actions = [(e.actor, e.action) for e in await audit.entries(db, CONVERSATION)]
    assert ("staff:alice", "staff_offer_approval_refused") in actions
    assert ("staff:sam", "staff_offer_approved") in actions


async def test_confirmed_twice_records_once_with_schedule_hold_proposal_and_case(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    offer = await _create(db, wang_fang, members["alice"], months=36, note="亲属资助")
    sent = await store.mark_sent(db, offer.id, members["alice"], current_policy())
    assert sent.status == "sent" and sent.expires_at is not None
    assert (await store.sent_offer_of(db, CONVERSATION)).id == offer.id  # type: ignore[union-attr]
    [summary] = [a for a in await account_summaries(db, wang_fang.debtor_id) if a.account_id]
    account = position(summary)
    current = recompute(
        sent.offer_terms, account, sent.circumstances, beijing_today(), current_policy()
    )
    assert current is not None and current.to_dict() == sent.details["offer"]
    first = await store.accept_offer(
        db,
        sent,
        offer=current,
        account=account,
        circumstances=sent.circumstances,
        today=beijing_today(),
    )
    second = await store.accept_offer(
        db,
        sent,
        offer=current,
        account=account,
        circumstances=sent.circumstances,
        today=beijing_today(),
    )
    assert first.reference == second.reference
    [agreement] = await _rows(db, Agreement, debtor_id=wang_fang.debtor_id)
    assert agreement.offer_id == store.agreement_offer_id(sent)
    installments = await _rows(db, AgreementInstallment, agreement_id=agreement.id)
    assert len(installments) == 36
    assert sum(i.amount for i in installments) == agreement.total_payable == Decimal("185700.00")
    [held] = await _rows(db, Account, id=wang_fang.account_id)
    assert held.collections_hold is True
    [proposal] = await _rows(db, NegotiationProposal, reference=wang_fang.proposal_reference)
    assert proposal.status == "accepted"
    [case] = await _rows(db, HandoffCase, id=wang_fang.case_id)
    assert (case.status, case.outcome, case.note) == ("closed", "plan_agreed", first.reference)
    after = await store.get_offer(db, offer.id)
    assert after is not None
    assert (after.status, after.agreement_reference) == ("accepted", first.reference)
    actions = [e.action for e in await audit.entries(db, CONVERSATION)]
    assert actions.count("agreement_recorded") == 1
    assert actions.count("staff_offer_accepted") == 1
    assert actions.count("handoff_closed") == 1


async def test_a_confirmed_offer_replaces_the_accounts_active_plan(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    """A debtor who asked to change their plan: the negotiator's plan takes its place."""
    old_id = await add_agreement(
        db, wang_fang.debtor_id, wang_fang.account_id, [(beijing_today(), "500.00")]
    )
    offer = await _create(db, wang_fang, members["alice"], months=36, note="调整原方案")
    sent = await store.mark_sent(db, offer.id, members["alice"], current_policy())
    [summary] = [a for a in await account_summaries(db, wang_fang.debtor_id) if a.account_id]
    account = position(summary)
    current = recompute(
        sent.offer_terms, account, sent.circumstances, beijing_today(), current_policy()
    )
    assert current is not None
    recorded = await store.accept_offer(
        db,
        sent,
        offer=current,
        account=account,
        circumstances=sent.circumstances,
        today=beijing_today(),
    )
    rows = {a.id: a for a in await _rows(db, Agreement, account_id=wang_fang.account_id)}
    assert (rows[old_id].status, rows[old_id].ended_on) == ("replaced", beijing_today())
    [active] = [a for a in rows.values() if a.status == "active"]
    assert active.reference == recorded.reference
    actions = [e.action for e in await audit.entries(db, CONVERSATION)]
    assert actions.count("agreement_replaced") == 1


async def test_unanswered_offers_expire_and_declined_ones_record_nothing(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    policy = current_policy()
    offer = await _create(db, wang_fang, members["alice"], months=36, note="亲属资助")
    sent = await store.mark_sent(db, offer.id, members["alice"], policy)
    assert sent.expires_at is not None
    assert await store.expire_offers(db, sent.expires_at - timedelta(seconds=1)) == []
    [expired] = await store.expire_offers(db, sent.expires_at)
    assert expired.status == "expired"
    assert await store.decline_offer(db, offer.id) is False, "an expired offer is not answered"
    again = await _create(db, wang_fang, members["alice"], months=30, note="亲属资助")
    await store.mark_sent(db, again.id, members["alice"], policy)
    assert await store.decline_offer(db, again.id) is True
    assert (await store.get_offer(db, again.id)).status == "declined"  # type: ignore[union-attr]
    assert await _rows(db, Agreement, debtor_id=wang_fang.debtor_id) == []
    actions = [(e.actor, e.action) for e in await audit.entries(db, CONVERSATION)]
    assert ("system", "staff_offer_expired") in actions and (
        "bot",
        "staff_offer_declined",
    ) in actions


# --- the console's API -----------------------------------------------------------------------


@dataclass
class FakeRasa:
    """Records the actions it is asked to run; answers 500 while `fail` is set."""

    executed: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail:
            return web.json_response({"message": "boom"}, status=500)
        self.executed.append((request.match_info["conversation_id"], body.get("name")))
        return web.json_response({})


@dataclass
class Console:
    db: Database
    rasa: FakeRasa
    server: TestServer
    clients: list[TestClient] = field(default_factory=list)

    async def signed_in(self, username: str) -> tuple[TestClient, dict[str, str]]:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        page = await (await client.get("/login")).text()
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = await client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
        )
        assert response.status == 303
        me = await (await client.get("/api/me")).json()
        return client, {"X-CSRF-Token": me["csrf_token"]}


@pytest.fixture
async def console(
    db: Database, members: dict[str, StaffMember], wang_fang: ProposalCase
) -> AsyncIterator[Console]:
    fake = FakeRasa()
    rasa_app = web.Application()
    rasa_app.router.add_post("/conversations/{conversation_id}/{endpoint:.+}", fake.handle)
    rasa = TestServer(rasa_app)
    await rasa.start_server()
    app = create_app(
        db,
        rasa_url=str(rasa.make_url("")).rstrip("/"),
        rasa_token="",
        secret_key=b"k" * 32,
        secure_cookies=False,
    )
    server = TestServer(app)
    await server.start_server()
    state = Console(db, fake, server)
    try:
        yield state
    finally:
        for client in state.clients:
            await client.close()
        await server.close()
        await rasa.close()


def terms(**values: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "plan": "personalized_installment",
        "first_due": first_due().isoformat(),
        "months": 60,
        "waiver": "20000.00",
        "note": "",
    }
    return body | values


async def test_the_api_builds_previews_approves_and_sends(
    console: Console, wang_fang: ProposalCase
) -> None:
    alice, alice_csrf = await console.signed_in("alice")
    url = f"/api/cases/{wang_fang.case_id}/offer"
    assert (await alice.post(url, json=terms())).status == 403, "no CSRF token"
    # A waiting case is not the negotiator's yet.
    refused = await alice.post(url, json=terms(), headers=alice_csrf)
    assert refused.status == 403
    claim = await alice.post(f"/api/cases/{wang_fang.case_id}/claim", headers=alice_csrf)
    assert claim.status == 200

    preview = await alice.post(url, json=terms(preview=True), headers=alice_csrf)
    assert preview.status == 200
    shown = (await preview.json())["preview"]
    assert (shown["total_payable"], shown["monthly_amount"], shown["months"]) == (
        "165700.00",
        "2761.67",
        60,
    )
    assert shown["needs_approval"]
    assert shown["beyond"] == ["waiver", "months", "interest_share"]
    assert shown["affordable_monthly"] == "2800.00"
    assert await store.offers_of_case(console.db, wang_fang.case_id) == [], (
        "a preview stores nothing"
    )

    built = await alice.post(url, json=terms(), headers=alice_csrf)
    assert built.status == 201
    answer = await built.json()
    offer_id = answer["offer"]["id"]
    assert answer["offer"]["status"] == "awaiting_approval" and answer["sent"] is False
    assert console.rasa.executed == []

    # The negotiator approves nothing; another negotiator does not even see it.
    denied = await alice.post(f"/api/offers/{offer_id}/approve", headers=alice_csrf)
    assert denied.status == 403
    bob, bob_csrf = await console.signed_in("bob")
    assert (await bob.get(f"/api/offers/{offer_id}")).status == 404

    sam, sam_csrf = await console.signed_in("sam")
    queue = await (await sam.get("/api/offers")).json()
    assert [o["id"] for o in queue["offers"]] == [offer_id]
    approved = await sam.post(f"/api/offers/{offer_id}/approve", headers=sam_csrf)
    assert approved.status == 200
    data = await approved.json()
    assert data["sent"] is True and data["offer"]["status"] == "sent"
    assert console.rasa.executed == [(CONVERSATION, "action_send_staff_offer")]
    mine = await (await alice.get(f"/api/offers/{offer_id}")).json()
    assert mine["offer"]["status_label"] == "已发送，等待债务人确认"
    again = await sam.post(f"/api/offers/{offer_id}/approve", headers=sam_csrf)
    assert again.status == 409 and (await again.json())["error"] == OFFER_ERRORS["not_awaiting"]


async def test_the_api_refuses_terms_that_break_the_policy_with_the_reason(
    console: Console, wang_fang: ProposalCase
) -> None:
    alice, csrf = await console.signed_in("alice")
    await alice.post(f"/api/cases/{wang_fang.case_id}/claim", headers=csrf)
    url = f"/api/cases/{wang_fang.case_id}/offer"
    cases = [
        (terms(months=61), 422, "超过上限 60 个月"),
        (terms(waiver="40000.00"), 422, "不能减免本金"),
        (terms(waiver="0", months=60), 422, "请填写说明"),
        (terms(months="60个月"), 400, "期数"),
        (terms(months=-3), 400, "期数"),
        (terms(waiver="1e5"), 400, "减免金额"),
        (terms(waiver=1.5), 400, "waiver"),
        (terms(waiver="9" * 40), 400, "减免金额"),
        (terms(first_due="明天"), 400, "首期还款日"),
        (terms(first_due="2026-02-30"), 400, "首期还款日"),
        (terms(plan=HOSTILE), 400, "方案类型"),
        (terms(note=HOSTILE * 100), 400, "说明不能超过"),
        (terms(preview="yes"), 400, "preview"),
        ({}, 400, "方案类型"),
    ]
    for body, status, message in cases:
        response = await alice.post(url, json=body, headers=csrf)
        assert response.status == status, (body, await response.text())
        assert message in (await response.json())["error"], body
    bad = await alice.post(url, data=b"\xff\xfe", headers=csrf)
    assert bad.status == 400
    assert await store.offers_of_case(console.db, wang_fang.case_id) == []
    # The hostile note is kept as text and shown escaped.
    ok = await alice.post(
        url, json=terms(waiver="0", months=60, note=HOSTILE + " 13700137002"), headers=csrf
    )
    assert ok.status == 201
    sam, _ = await console.signed_in("sam")
    approvals = await (await sam.get("/offers")).text()
    assert HOSTILE not in approvals and "&lt;script&gt;alert(1)&lt;/script&gt;" in approvals
    assert "13700137002" not in approvals, "a mobile in the note is kept masked"
    assert (await alice.get("/api/offers/999999999")).status == 404
    anonymous = TestClient(console.server)
    await anonymous.start_server()
    console.clients.append(anonymous)
    assert (await anonymous.get("/api/offers/1")).status == 401


async def test_the_offer_page_previews_and_sends_within_limits(
    console: Console, wang_fang: ProposalCase
) -> None:
    alice, csrf = await console.signed_in("alice")
    await alice.post(f"/api/cases/{wang_fang.case_id}/claim", headers=csrf)
    page = await alice.get(f"/cases/{wang_fang.case_id}/offer")
    text = await page.text()
    assert page.status == 200 and wang_fang.proposal_reference in text and "185700.00" in text
    token = csrf["X-CSRF-Token"]
    form = {
        "csrf_token": token,
        "plan": "personalized_installment",
        "first_due": first_due().isoformat(),
        "months": "36",
        "waiver": "",
        "monthly_amount": "",
        "note": "亲属每月资助",
        "intent": "preview",
    }
    preview = await alice.post(f"/cases/{wang_fang.case_id}/offer", data=form)
    shown = await preview.text()
    assert preview.status == 200 and "5158.34" in shown and "发送给债务人" in shown
    refused = await alice.post(
        f"/cases/{wang_fang.case_id}/offer", data=form | {"months": "61"}, allow_redirects=False
    )
    assert refused.status == 422 and "超过上限" in await refused.text()
    sent = await alice.post(
        f"/cases/{wang_fang.case_id}/offer", data=form | {"intent": "submit"}, allow_redirects=False
    )
    assert sent.status == 303 and sent.headers["Location"].endswith("notice=sent")
    assert console.rasa.executed == [(CONVERSATION, "action_send_staff_offer")]
    [offer] = await store.offers_of_case(console.db, wang_fang.case_id)
    assert offer.status == "sent" and offer.months == 36
    # Rasa down: the offer stays approved, to be sent again.
    console.rasa.fail = True
    again = await alice.post(
        f"/cases/{wang_fang.case_id}/offer",
        data=form | {"intent": "submit", "months": "30"},
        allow_redirects=False,
    )
    assert again.headers["Location"].endswith("notice=not_sent")
    newest = (await store.offers_of_case(console.db, wang_fang.case_id))[0]
    assert newest.status == "approved"
    console.rasa.fail = False
    resent = await alice.post(
        f"/offers/{newest.id}/send", data={"csrf_token": token}, allow_redirects=False
    )
    assert resent.headers["Location"].endswith("notice=sent")
    summary = json.dumps((await store.get_offer(console.db, newest.id)).to_dict())  # type: ignore[union-attr]
    assert '"status": "sent"' in summary
    # The debtor's decline is on the case page the negotiator works from.
    assert await store.decline_offer(console.db, newest.id) is True
    case_page = await (await alice.get(f"/cases/{wang_fang.case_id}")).text()
    assert f"方案 {newest.reference}：" in case_page and "债务人已拒绝" in case_page


async def test_the_retention_purge_drops_circumstances_and_notes_and_keeps_the_figures(
    db: Database, wang_fang: ProposalCase, members: dict[str, StaffMember]
) -> None:
    offer = await _create(db, wang_fang, members["alice"], months=36, note="亲属资助 13700137002")
    assert offer.details["circumstances"]["monthly_income"] == "6000.00"
    [change] = [
        change for table, change in retention_rows.app_changes()[1] if table == "staff_offers"
    ]
    async with db.engine.begin() as connection:
        counted = await connection.run_sync(lambda sync: change(sync, [CONVERSATION], True))
        changed = await connection.run_sync(lambda sync: change(sync, [CONVERSATION], False))
        again = await connection.run_sync(lambda sync: change(sync, [CONVERSATION], False))
    assert (counted, changed, again) == (1, 1, 0)
    after = await store.get_offer(db, offer.id)
    assert after is not None
    assert after.details["circumstances"] is None and after.details["terms"]["note"] == ""
    assert after.details["offer"] == offer.details["offer"]
    assert (after.months, after.total_payable) == (36, Decimal("185700.00"))


async def test_an_offer_of_a_closed_case_is_neither_approved_nor_sent(
    console: Console, wang_fang: ProposalCase
) -> None:
    alice, csrf = await console.signed_in("alice")
    await alice.post(f"/api/cases/{wang_fang.case_id}/claim", headers=csrf)
    built = await alice.post(
        f"/api/cases/{wang_fang.case_id}/offer", json=terms(note="亲属资助"), headers=csrf
    )
    offer_id = (await built.json())["offer"]["id"]
    closed = await alice.post(
        f"/api/cases/{wang_fang.case_id}/close",
        json={"outcome": "no_contact", "note": ""},
        headers=csrf,
    )
    assert closed.status == 200
    sam, sam_csrf = await console.signed_in("sam")
    refused = await sam.post(f"/api/offers/{offer_id}/approve", headers=sam_csrf)
    assert refused.status == 409 and "已结束" in (await refused.json())["error"]
    view = await store.get_offer(console.db, offer_id)
    assert view is not None and view.status == "awaiting_approval"
    assert [name for _, name in console.rasa.executed] == ["action_handoff_resume"]
