"""A negotiator takes over a real conversation in the staff console, in headless Chromium.

The debtor talks to the running stack over REST and asks for a person; the
negotiator signs in to the console in a real browser, sees the waiting case,
claims it, reads the debtor's messages as they arrive, replies (the reply
reaches the debtor's REST conversation), and closes the case, after which the
bot answers the debtor again. Screenshots of the queue and the case page are
saved under `results/` for the README.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from bot.store import staff
from bot.store.engine import Database
from tests.support.browser import RESULTS, chromium, eventually
from tests.support.conversations import reply_text
from tests.support.rasa_api import RestClient, staff_messages
from tests.support.records import handoff_cases

pytestmark = pytest.mark.e2e


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a desktop-sized window."""
    with chromium(tmp_path / "chromium", (1280, 1400)) as driver:
        yield driver


async def test_a_negotiator_takes_over_and_gives_the_conversation_back(
    browser: WebDriver,
    client: RestClient,
    database_url: str,
    rasa_url: str,
    console_url: str,
) -> None:
    username, password = f"neg{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    db = Database(database_url)
    try:
        await staff.create_staff(db, username, "王专员", password, "negotiator")
    finally:
        await db.dispose()

    # The debtor asks for a person; the bot hands over and falls silent.
    assert "案件编号" in reply_text(await client.say("我想找人工客服"))
    [case] = handoff_cases(database_url, client.sender)
    assert await client.say("我这个月实在周转不开") == []

    # Sign in and find the case in the queue.
    browser.get(f"{console_url}/cases/{case['id']}")
    assert "/login" in browser.current_url, "a case page must need a session"
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    browser.get(console_url + "/")
    row = eventually(
        lambda: next(
            (
                r
                for r in browser.find_elements(By.CSS_SELECTOR, "#queue tr")
                if case["reference"] in r.text
            ),
            None,
        ),
        "the case in the queue",
    )
    RESULTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(RESULTS / "console-queue.png"))

    # Claim it: the case page shows the summary and the transcript.
    row.find_element(By.CSS_SELECTOR, f"form[action='/cases/{case['id']}/claim'] button").click()
    if f"/cases/{case['id']}" not in browser.current_url:
        browser.get(f"{console_url}/cases/{case['id']}")
    eventually(
        lambda: "周转不开" in browser.find_element(By.ID, "transcript").text,
        "the debtor's message in the transcript",
    )
    # A message sent now appears without reloading the page.
    assert await client.say("你们什么时候回复我") == []
    eventually(
        lambda: "什么时候回复我" in browser.find_element(By.ID, "transcript").text,
        "a new debtor message to appear live",
    )

    # Reply: it reaches the debtor's REST conversation.
    answer = "您好，我是协商专员王专员，我们一起看看怎么安排。"
    browser.find_element(By.CSS_SELECTOR, "#reply textarea[name=text]").send_keys(answer)
    browser.find_element(By.CSS_SELECTOR, "#reply button[type=submit]").click()
    message = await _first_staff_message(rasa_url, client.sender)
    assert message["text"] == answer
    assert message["staff"] == "王专员"
    eventually(
        lambda: answer in browser.find_element(By.ID, "transcript").text,
        "the reply in the transcript",
    )
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(RESULTS / "console-case.png"))
    assert handoff_cases(database_url, client.sender)[0]["status"] == "claimed"

    # Close: the bot answers the debtor again.
    Select(browser.find_element(By.CSS_SELECTOR, "#close select[name=outcome]")).select_by_value(
        "no_contact"
    )
    browser.find_element(By.CSS_SELECTOR, "#close textarea[name=note]").send_keys(
        "已回复，待客户来电"
    )
    browser.find_element(By.CSS_SELECTOR, "#close button[type=submit]").click()
    eventually(
        lambda: handoff_cases(database_url, client.sender)[0]["status"] == "closed",
        "the case to close",
    )
    closed = handoff_cases(database_url, client.sender)[0]
    assert (closed["outcome"], closed["note"]) == ("no_contact", "已回复，待客户来电")
    assert "征信" in reply_text(await client.say("逾期会影响征信吗"))


async def _first_staff_message(rasa_url: str, sender: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = await staff_messages(rasa_url, sender)
        if messages:
            return messages[0]
        await asyncio.sleep(0.3)
    pytest.fail("the staff reply never reached the debtor's REST conversation")
