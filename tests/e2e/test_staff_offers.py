"""A negotiator's offer, from the proposal to the agreement, against the running stack.

A debtor beyond the assistant's authority is handed over; in headless Chromium
a negotiator builds an offer from the proposal (beyond a negotiator's limits),
a supervisor approves it, and the offer reaches the debtor's conversation with
confirm and decline buttons. The debtor confirms, over REST and over WeChat
(the fake WeChat server), and the agreement, its schedule, the collections hold,
the accepted proposal and the closed case are in the database. A screenshot of
the offer form is saved under `results/` for the README.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from bot.domain.clock import beijing_today
from bot.store import staff
from bot.store.engine import Database
from tests.support.browser import RESULTS, chromium, eventually
from tests.support.conversations import reply_text
from tests.support.ports import e2e_port
from tests.support.rasa_api import RestClient, staff_messages
from tests.support.records import execute, handoff_cases, query
from tests.support.wechat_fake import (
    FAKE_PORT,
    FakeInThread,
    FakeWeChatApi,
    WeChatClient,
    http_transport,
    new_openid,
    text_message,
)

pytestmark = pytest.mark.e2e

NOTE = "经营亏损后收入下降，亲属每月资助，可承担每期金额"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium", (1280, 1600)) as driver:
        yield driver


async def _staff(database_url: str) -> dict[str, tuple[str, str]]:
    """A negotiator and a supervisor: user name and password of each."""
    members = {}
    db = Database(database_url)
    try:
        for role, name in (("negotiator", "王专员"), ("supervisor", "张主管")):
            username, password = f"{role[:3]}{secrets.token_hex(3)}", secrets.token_urlsafe(12)
            await staff.create_staff(db, username, name, password, role)
            members[role] = (username, password)
    finally:
        await db.dispose()
    return members


def _sign_in(browser: WebDriver, console_url: str, member: tuple[str, str]) -> None:
    browser.get(f"{console_url}/login")
    browser.find_element(By.NAME, "username").send_keys(member[0])
    browser.find_element(By.NAME, "password").send_keys(member[1])
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    eventually(lambda: "/login" not in browser.current_url, "signing in")


def _sign_out(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    eventually(lambda: "/login" in browser.current_url, "signing out")


def _build_and_approve(
    browser: WebDriver,
    console_url: str,
    case: dict[str, Any],
    members: dict[str, tuple[str, str]],
    waiver: str,
    monthly: str,
    screenshot: str | None = None,
) -> None:
    """The negotiator claims the case and builds 60 months with `waiver`; a supervisor approves.

    60 months and the share of interest waived are beyond a negotiator's limits.
    """
    _sign_in(browser, console_url, members["negotiator"])
    browser.get(f"{console_url}/cases/{case['id']}")
    browser.find_element(
        By.CSS_SELECTOR, f"form[action='/cases/{case['id']}/claim'] button"
    ).click()
    eventually(lambda: browser.find_elements(By.ID, "offer-link"), "the offer link on the case")
    browser.find_element(By.ID, "offer-link").click()
    eventually(lambda: browser.find_elements(By.ID, "offer-form"), "the offer form")
    assert case["reference"] in browser.page_source
    assert "XT" in browser.find_element(By.ID, "proposal").text, "the proposal is shown"
    form = browser.find_element(By.ID, "offer-form")
    Select(form.find_element(By.NAME, "plan")).select_by_value("personalized_installment")
    due = (beijing_today() + timedelta(days=15)).isoformat()
    browser.execute_script(
        "arguments[0].value = arguments[1]", form.find_element(By.NAME, "first_due"), due
    )
    for name, value in (("months", "60"), ("waiver", waiver), ("note", NOTE)):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    # Over the legal five years: refused with the reason, what was typed kept.
    months = form.find_element(By.NAME, "months")
    months.clear()
    months.send_keys("61")
    form.find_element(By.CSS_SELECTOR, "button[value=preview]").click()
    error = eventually(lambda: browser.find_elements(By.ID, "offer-error"), "the refusal")
    assert "不超过 5 年" in error[0].text
    months = browser.find_element(By.CSS_SELECTOR, "#offer-form [name=months]")
    months.clear()
    months.send_keys("60")
    browser.find_element(By.CSS_SELECTOR, "#offer-form button[value=preview]").click()
    preview = eventually(lambda: browser.find_elements(By.ID, "offer-preview"), "the preview")
    assert "需主管批准" in preview[0].text and monthly in preview[0].text
    if screenshot:
        RESULTS.mkdir(exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(RESULTS / screenshot))
    browser.find_element(By.ID, "offer-submit").click()
    eventually(lambda: "已提交主管审批" in browser.page_source, "the offer to await approval")
    _sign_out(browser)

    _sign_in(browser, console_url, members["supervisor"])
    browser.get(f"{console_url}/offers")
    row = eventually(
        lambda: next(
            (
                r
                for r in browser.find_elements(By.CSS_SELECTOR, "#approvals tbody tr")
                if "XF" in r.text
            ),
            None,
        ),
        "the offer in the approval queue",
    )
    row.find_element(By.CSS_SELECTOR, "form[action$='/approve'] button").click()
    eventually(lambda: "已批准，方案已发送给债务人" in browser.page_source, "the approval")
    _sign_out(browser)


def _check_recorded(database_url: str, sender: str, case: dict[str, Any]) -> dict[str, Any]:
    [agreement] = query(
        database_url, "SELECT * FROM agreements WHERE conversation_id = :c", c=sender
    )
    assert agreement["months"] == 60 and agreement["plan"] == "personalized_installment"
    schedule = query(
        database_url,
        "SELECT * FROM agreement_installments WHERE agreement_id = :a ORDER BY number",
        a=agreement["id"],
    )
    assert [i["number"] for i in schedule] == list(range(1, 61))
    total = sum(Decimal(str(i["amount"])) for i in schedule)
    assert total == Decimal(str(agreement["total_payable"]))
    [account] = query(
        database_url,
        "SELECT collections_hold FROM accounts WHERE id = :i",
        i=agreement["account_id"],
    )
    assert account["collections_hold"] in (True, 1)
    [proposal] = query(
        database_url,
        "SELECT status FROM negotiation_proposals WHERE conversation_id = :c",
        c=sender,
    )
    assert proposal["status"] == "accepted"
    [closed] = handoff_cases(database_url, sender)
    assert (closed["status"], closed["outcome"]) == ("closed", "plan_agreed")
    assert closed["note"] == agreement["reference"]
    [offer] = query(database_url, "SELECT * FROM staff_offers WHERE case_id = :i", i=case["id"])
    assert (offer["status"], offer["agreement_reference"]) == ("accepted", agreement["reference"])
    actions = [
        (row["actor"], row["action"])
        for row in query(
            database_url, "SELECT actor, action FROM audit_log WHERE conversation_id = :c", c=sender
        )
    ]
    assert sum(1 for _, action in actions if action == "agreement_recorded") == 1
    for action in ("staff_offer_built", "staff_offer_approved", "staff_offer_sent"):
        assert any(a == action and actor.startswith("staff:") for actor, a in actions), action
    return agreement


async def test_a_negotiator_builds_a_supervisor_approves_and_the_debtor_confirms_over_rest(
    browser: WebDriver,
    client: RestClient,
    database_url: str,
    rasa_url: str,
    console_url: str,
    lift_holds: None,
) -> None:
    members = await _staff(database_url)
    for said in ("做生意赔了 现在一个月就六千收入 想跟你们协商下怎么还", "王芳", "4321"):
        await client.say(said)
    assert "协商申请（编号 XT" in reply_text(await client.say("13700137002"))
    [case] = handoff_cases(database_url, client.sender)
    assert case["reason"] == "beyond_authority"

    _build_and_approve(
        browser, console_url, case, members, "20000.00", "2761.67", "console-offer.png"
    )

    messages = await _staff_messages_with_buttons(rasa_url, client.sender)
    shown = "\n".join(m["text"] for m in messages)
    assert "协商专员为您制定了还款方案" in shown and "共 60 期" in shown
    assert "不在任何银行申请新的信用卡" in shown
    payloads = [b["payload"] for m in messages for b in m.get("buttons", [])]
    assert payloads == ["/affirm", "/deny"]

    recorded = reply_text(await client.say("/affirm"))
    assert "已为您登记，协议编号 XS" in recorded
    agreement = _check_recorded(database_url, client.sender, case)
    assert agreement["reference"] in recorded
    # The same confirmation again records nothing more.
    await client.say("/affirm")
    assert (
        len(
            query(
                database_url,
                "SELECT id FROM agreements WHERE conversation_id = :c",
                c=client.sender,
            )
        )
        == 1
    )


async def _staff_messages_with_buttons(rasa_url: str, sender: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = await staff_messages(rasa_url, sender)
        if any(m.get("buttons") for m in messages):
            return messages
        await asyncio.sleep(0.3)
    pytest.fail("the offer never reached the debtor's REST conversation")


# --- the same over WeChat ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wechat_api() -> Iterator[FakeWeChatApi]:
    with FakeInThread(FakeWeChatApi(), e2e_port(FAKE_PORT, "E2E_WECHAT_PORT")) as fake:
        yield fake


@pytest.fixture
async def wechat(rasa_url: str) -> AsyncIterator[WeChatClient]:
    async with aiohttp.ClientSession() as session:
        yield WeChatClient(http_transport(session, f"{rasa_url}/webhooks/wechat/"))


@pytest.fixture
def chen_jing_beyond_authority(database_url: str) -> Iterator[None]:
    """陈静's card with two broken plans, beyond the assistant's authority, for this test."""
    statement = (
        "UPDATE accounts SET broken_plans = :b"
        " WHERE debtor_id = (SELECT id FROM debtors WHERE full_name = '陈静')"
    )
    execute(database_url, statement, b=2)
    yield
    execute(database_url, statement, b=0)


async def _say(client: WeChatClient, api: FakeWeChatApi, openid: str, text: str) -> list[str]:
    before = len(api.sent_to(openid))
    reply = await client.push(text_message(openid, text))
    assert reply.status == 200, reply.body
    texts = [reply.content] if reply.content else []
    await asyncio.sleep(1.5)
    return texts + api.sent_to(openid)[before:]


async def test_the_same_over_wechat(
    browser: WebDriver,
    wechat: WeChatClient,
    wechat_api: FakeWeChatApi,
    database_url: str,
    console_url: str,
    chen_jing_beyond_authority: None,
    lift_holds: None,
) -> None:
    members = await _staff(database_url)
    openid = new_openid()
    sender = f"wechat:{openid}"
    for said in ("做生意赔了 现在一个月就六千收入 想跟你们协商下怎么还", "陈静", "0026"):
        await _say(wechat, wechat_api, openid, said)
    handed = "\n".join(await _say(wechat, wechat_api, openid, "13500135004"))
    assert "协商申请（编号 XT" in handed
    [case] = handoff_cases(database_url, sender)
    assert case["channel"] == "wechat"

    before = len(wechat_api.sent_to(openid))
    _build_and_approve(browser, console_url, case, members, "5000.00", "843.34")
    sent = await wechat_api.wait_for(openid, before + 3, timeout=20)
    shown = "\n".join(sent[before:])
    assert "协商专员为您制定了还款方案" in shown and "「确认登记」" in shown

    recorded = "\n".join(await _say(wechat, wechat_api, openid, "1"))
    assert "已为您登记，协议编号 XS" in recorded
    agreement = _check_recorded(database_url, sender, case)
    terms = json.loads(agreement["terms"])
    assert terms["offer"]["months"] == 60
