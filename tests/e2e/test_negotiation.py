"""Negotiation conversations against the running stack, then the database they left.

Each conversation of `tests/conversations/negotiation/` is played as one debtor;
afterwards the agreement (with its whole schedule), the collections hold, the
proposal for a negotiator and the audit entries are read back from the
application database, so a reply that says "登记" without a record fails.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.domain.clock import beijing_today
from bot.domain.negotiation import add_months
from bot.domain.policy import load_policy
from bot.store.engine import sync_url
from bot.tools.stack import Stack, StackConfig
from tests.support.conversations import (
    CONVERSATIONS_DIR,
    reply_text,
)
from tests.support.conversations import (
    play as play_file,
)
from tests.support.ports import e2e_port
from tests.support.rasa_api import RestClient
from tests.support.records import handoff_cases

pytestmark = pytest.mark.e2e

NEGOTIATIONS = CONVERSATIONS_DIR / "negotiation"
POLICY = load_policy()


@dataclass
class Stored:
    agreements: list[dict[str, Any]]
    installments: list[dict[str, Any]]
    proposals: list[dict[str, Any]]
    audit: list[str]
    holds: dict[int, bool]


def stored(database_url: str, conversation_id: str) -> Stored:
    """Everything the conversation left in the application database."""
    engine = sa.create_engine(sync_url(database_url), future=True)
    by_conversation = {"c": conversation_id}

    def rows(query: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in connection.execute(sa.text(query), values or {})]

    try:
        with engine.connect() as connection:
            agreements = rows(
                "SELECT * FROM agreements WHERE conversation_id = :c ORDER BY id", by_conversation
            )
            installments = rows(
                "SELECT i.* FROM agreement_installments i JOIN agreements a"
                " ON a.id = i.agreement_id WHERE a.conversation_id = :c"
                " ORDER BY i.agreement_id, i.number",
                by_conversation,
            )
            proposals = rows(
                "SELECT * FROM negotiation_proposals WHERE conversation_id = :c ORDER BY id",
                by_conversation,
            )
            audit = [
                row["action"]
                for row in rows(
                    "SELECT action FROM audit_log WHERE conversation_id = :c ORDER BY id",
                    by_conversation,
                )
            ]
            holds = {
                row["id"]: bool(row["collections_hold"])
                for row in rows("SELECT id, collections_hold FROM accounts")
            }
    finally:
        engine.dispose()
    return Stored(agreements, installments, proposals, audit, holds)


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def play(client: RestClient, name: str) -> None:
    await play_file(client, NEGOTIATIONS / f"{name}.yml")


def only_agreement(found: Stored) -> dict[str, Any]:
    assert len(found.agreements) == 1, found.agreements
    agreement = found.agreements[0]
    schedule = [i for i in found.installments if i["agreement_id"] == agreement["id"]]
    assert [i["number"] for i in schedule] == list(range(1, agreement["months"] + 1))
    assert sum(_money(i["amount"]) for i in schedule) == _money(agreement["total_payable"])
    assert max(_money(i["amount"]) for i in schedule) == _money(agreement["monthly_amount"])
    dates = [_day(i["due_date"]) for i in schedule]
    assert dates == sorted(dates) and dates[0] == _day(agreement["first_due"])
    assert dates[-1] == _day(agreement["last_due"])
    assert found.holds[agreement["account_id"]] is True
    assert found.audit.count("agreement_recorded") == 1
    terms = json.loads(agreement["terms"])
    assert terms["offer"]["total_payable"] == str(_money(agreement["total_payable"]))
    assert agreement["months"] <= 60
    situation = terms["circumstances"]
    if situation is not None:  # a plan, not the debtor's own promise
        disposable = (
            _money(situation["monthly_income"])
            - _money(situation["monthly_expenses"])
            - _money(situation["other_repayments"])
        )
        affordable = max(disposable, Decimal(0)) * POLICY.affordability.ratio
        if terms["offer"]["one_off"]:
            limit = affordable + _money(situation["available_funds"])
            assert _money(agreement["total_payable"]) <= limit
        else:
            regular = _money(terms["offer"]["concurrent_monthly"])
            assert _money(agreement["monthly_amount"]) + regular <= affordable
    return agreement


def first_due() -> date:
    return beijing_today() + timedelta(days=POLICY.schedule.first_due_days)


async def test_zhang_wei_agrees_a_personalized_installment(client, database_url) -> None:
    await play(client, "zhang_wei_installment")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "personalized_installment"
    assert (agreement["months"], _money(agreement["monthly_amount"])) == (23, Decimal("1024.35"))
    assert _money(agreement["total_payable"]) == Decimal("23560.00")
    assert _money(agreement["amount_waived"]) == Decimal("0.00")
    assert _day(agreement["first_due"]) == first_due()
    terms = json.loads(agreement["terms"])
    assert terms["circumstances"]["monthly_income"] == "4000.00"
    assert terms["circumstances"]["monthly_expenses"] == "2500.00"
    assert terms["circumstances"]["hardship_reason"] == "unemployment"
    assert terms["circumstances"]["hardship_months"] == 6


async def test_answers_given_one_by_one_stay_in_step(client, database_url) -> None:
    """Identity in three messages, then one answer per question, as the assistant asks:
    each answer is kept for its own question and the debtor reaches an agreement."""
    await play(client, "zhang_wei_step_by_step")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "personalized_installment"
    situation = json.loads(agreement["terms"])["circumstances"]
    assert (situation["monthly_income"], situation["monthly_expenses"]) == ("4000.00", "2500.00")
    assert situation["other_repayments"] == "0.00"
    assert situation["hardship_reason"] == "unemployment"
    assert situation["hardship_months"] == 12


async def test_li_na_agrees_a_loan_extension(client, database_url) -> None:
    await play(client, "li_na_extension")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "loan_extension"
    assert (agreement["months"], _money(agreement["total_payable"])) == (7, Decimal("6592.00"))
    assert _day(agreement["first_due"]) == add_months(first_due(), 3)


async def test_chen_jing_settles_in_one_payment(client, database_url) -> None:
    await play(client, "chen_jing_lump_sum")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "lump_sum_settlement"
    assert _money(agreement["total_payable"]) == Decimal("51050.00")
    assert _money(agreement["amount_waived"]) == Decimal("4550.00")
    assert agreement["months"] == 1


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _next_week_friday(day: date) -> date:
    return day - timedelta(days=day.weekday()) + timedelta(days=7 + 4)


async def test_liu_yang_promises_to_pay_by_month_end(client, database_url) -> None:
    await play(client, "liu_yang_promise")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "promise_to_pay"
    assert _money(agreement["total_payable"]) == Decimal("3045.00")
    assert _day(agreement["first_due"]) == _month_end(beijing_today())


async def test_liu_yang_promises_part_by_next_friday(client, database_url) -> None:
    await play(client, "liu_yang_partial_promise")
    agreement = only_agreement(stored(database_url, client.sender))
    assert agreement["plan"] == "promise_to_pay"
    assert _money(agreement["total_payable"]) == Decimal("3000.00")
    assert _day(agreement["first_due"]) == _next_week_friday(beijing_today())


async def test_liu_yang_promises_in_two_parts(client, database_url) -> None:
    """Two payments of one promise, each with its date, checked and recorded together."""
    await play(client, "liu_yang_promise_in_parts")
    agreement = only_agreement(stored(database_url, client.sender))
    assert (agreement["plan"], agreement["months"]) == ("promise_to_pay", 2)
    schedule = stored(database_url, client.sender).installments
    today = beijing_today()
    assert [(_day(i["due_date"]), _money(i["amount"])) for i in schedule] == [
        (today + timedelta(days=1), Decimal("1000.00")),
        (_next_week_friday(today), Decimal("2045.00")),
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("wang_fang_proposal", "broken_plans"), ("zero_disposable_income", "no_affordable_plan")],
)
async def test_no_automatic_plan_but_a_proposal(client, database_url, name, reason) -> None:
    await play(client, name)
    found = stored(database_url, client.sender)
    assert found.agreements == []
    assert [p["reason"] for p in found.proposals] == [reason]
    assert found.proposals[0]["status"] == "pending"
    details = json.loads(found.proposals[0]["details"])
    assert details["circumstances"]["monthly_income"] in ("6000.00", "2000.00")
    assert "proposal_prepared" in found.audit
    # Beyond the assistant's authority: the conversation waits for a person.
    [case] = handoff_cases(database_url, client.sender)
    assert case["reason"] == "beyond_authority"
    summary = json.loads(case["summary"])
    assert summary["proposal"]["reference"] == found.proposals[0]["reference"]
    assert summary["circumstances"]["monthly_income"] in ("6000.00", "2000.00")


@pytest.mark.parametrize(
    "name",
    [
        "counter_proposal",
        "change_of_mind",
        "faq_in_the_middle",
        "implausible_figures",
        "liu_yang_promise_declined",
        "question_at_the_terms",
    ],
)
async def test_nothing_recorded_without_confirmation(client, database_url, name) -> None:
    await play(client, name)
    found = stored(database_url, client.sender)
    assert found.agreements == [] and found.installments == []
    assert "agreement_recorded" not in found.audit


def test_every_negotiation_conversation_is_played() -> None:
    played = {
        "zhang_wei_installment",
        "zhang_wei_step_by_step",
        "li_na_extension",
        "chen_jing_lump_sum",
        "liu_yang_promise",
        "liu_yang_partial_promise",
        "liu_yang_promise_in_parts",
        "wang_fang_proposal",
        "zero_disposable_income",
        "counter_proposal",
        "change_of_mind",
        "faq_in_the_middle",
        "implausible_figures",
        "liu_yang_promise_declined",
        "question_at_the_terms",
    }
    assert {path.stem for path in NEGOTIATIONS.glob("*.yml")} == played


def _crash_stack(database_url: str, scratch: Path) -> Stack:
    """A stack of the test's own, for when the tests run against one started elsewhere."""
    return Stack(
        StackConfig(
            rasa_port=e2e_port(16105),
            action_port=e2e_port(16155),
            log_dir=scratch / "log",
            extra_env={"TRACKER_DB": str(scratch / "tracker.db"), "DATABASE_URL": database_url},
        )
    )


def _start_actions_if_killed(stack: Stack) -> None:
    if not stack.started("actions"):
        stack.restart_actions()


async def test_an_action_server_crash_between_offer_and_confirmation(
    database_url: str, tmp_path: Path, session_stack: Stack | None
) -> None:
    """Killed after the terms are shown: nothing is recorded; after a restart the
    same confirmation records the agreement once, with its whole schedule.

    The action server killed and started again is the one of the stack the
    other tests use (a stack of its own costs a Rasa start, about 90 s); it is
    started again even when the test fails, so that the tests after it have one.
    """
    with contextlib.ExitStack() as cleanup:
        if session_stack is not None:
            stack = session_stack
            cleanup.callback(_start_actions_if_killed, stack)
        else:
            stack = cleanup.enter_context(_crash_stack(database_url, tmp_path))
        async with aiohttp.ClientSession() as session:
            client = RestClient(session, stack.config.rasa_url)
            client.sender = f"crash-{uuid.uuid4().hex}"
            for text in (
                "我想协商还款",
                "我是张伟 身份证尾号1234 手机13800138000",
                "收入五千，开销两千五，没有别的贷款",
                "被裁员了",
                "半年",
                "不确定",
                "没有",
            ):
                await client.say(text)
            assert "确认登记" in reply_text(await client.say("选1"))
            stack.kill("actions")
            reply = reply_text(await client.say("确认"))
            assert "已为您登记" not in reply
            found = stored(database_url, client.sender)
            assert found.agreements == [] and found.installments == []

            stack.restart_actions()
            # The terms are still on the table: the debtor confirms again.
            reply = reply_text(await client.say("确认"))
            if "已为您登记" not in reply:
                # Rasa may have moved on after the failed action; choosing again works.
                assert "确认登记" in reply_text(await client.say("选1")), reply
                reply = reply_text(await client.say("确认"))
            assert "已为您登记" in reply
            agreement = only_agreement(stored(database_url, client.sender))
            assert agreement["months"] == 14
            assert _money(agreement["monthly_amount"]) == Decimal("1682.86")
