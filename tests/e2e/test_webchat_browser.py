"""A debtor uses the web chat page on a phone-sized headless Chromium.

The page is served by the Rasa server under test at `/webhooks/webchat/` and
talks to it over Rasa's `socketio` channel. 张伟 verifies, states his
circumstances (typing), gets an offer (shown as a table), picks it with the
"方案1" button, sees the terms and confirms them; after a reload the history is
still there and the same Rasa conversation goes on (his schedule, which needs
the verified session, comes as a table). He then asks for a person, and a
staff reply sent through the Rasa HTTP API appears live, marked as from a
person. Every assistant text the page shows keeps to the rules of conduct, and
the chat fills the screen below the notice on the first load and after the reload.
Screenshots are saved under `results/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from bot.domain.conduct import conduct_problems
from bot.domain.script import TAIWAN, convert, marks
from bot.tools.stack import ROOT
from tests.support.browser import PHONE, RESULTS, eventually, phone_chromium
from tests.support.rasa_api import staff_reply

pytestmark = pytest.mark.e2e

CONVERSATION = ROOT / "tests" / "conversations" / "negotiation" / "zhang_wei_installment.yml"
STORE_KEY = "debt-webchat.v1"

#: The page's state and what its chat component shows, in one round trip.
READ_PAGE = """
const root = document.querySelector('deep-chat')?.shadowRoot;
const state = JSON.parse(localStorage.getItem(arguments[0]) || '{}');
return {
  state,
  status: document.getElementById('status').textContent,
  typing: !document.getElementById('typing').hidden,
  bubbles: root ? [...root.querySelectorAll('.bot-message')].map((e) => e.innerText) : [],
  staff: root ? [...root.querySelectorAll('.staff-message')].map((e) => e.innerText) : [],
  users: root ? [...root.querySelectorAll('.user-message-text')].map((e) => e.innerText) : [],
};
"""

#: Where the chat component and its inner container are, against the viewport and the notice.
READ_LAYOUT = """
const chat = document.querySelector('deep-chat');
const box = (e) => {
  if (!e) return null;
  const {left, top, right, bottom, width, height} = e.getBoundingClientRect();
  return {left, top, right, bottom, width, height};
};
return {
  viewport: {width: document.documentElement.clientWidth, height: window.innerHeight},
  notice: box(document.querySelector('section.notice')),
  chat: box(chat),
  container: box(chat?.shadowRoot?.getElementById('container')),
  messages: box(chat?.shadowRoot?.getElementById('messages')),
};
"""


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a 390x844 phone screen."""
    with phone_chromium(tmp_path / "chromium") as driver:
        yield driver


class Page:
    """The web chat page in the browser, as the debtor sees and uses it."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def read(self) -> dict[str, Any]:
        page: dict[str, Any] = self.driver.execute_script(READ_PAGE, STORE_KEY)
        return page

    @property
    def root(self) -> Any:
        return self.driver.find_element(By.ID, "chat").shadow_root

    def bot_texts(self) -> list[str]:
        return [m["text"] for m in self.read()["state"].get("messages", []) if m["role"] == "ai"]

    def wait_ready(self) -> None:
        eventually(lambda: self.read()["status"] == "在线", "the page to connect")

    def assert_chat_fills_the_screen(self, when: str) -> None:
        """The chat component, and its container inside, fill the screen below the notice."""

        def fills(layout: dict[str, Any]) -> bool:
            view = layout["viewport"]

            def wide(box: dict[str, float] | None) -> bool:
                return box is not None and box["width"] >= 0.95 * view["width"]

            def down(box: dict[str, float] | None) -> bool:
                return (
                    box is not None and view["height"] - 10 <= box["bottom"] <= view["height"] + 1
                )

            # The element and the container in its shadow root (deep-chat can give the
            # container its own fixed size inside a full-size element); the message list
            # is as wide, with the input box under it.
            chat, container, messages = layout["chat"], layout["container"], layout["messages"]
            return bool(
                wide(chat)
                and down(chat)
                and wide(container)
                and down(container)
                and wide(messages)
                and abs(chat["top"] - layout["notice"]["bottom"]) <= 2
            )

        layout: dict[str, Any] = {}

        def check() -> bool:
            layout.update(self.driver.execute_script(READ_LAYOUT))
            return fills(layout)

        try:
            eventually(check, f"the chat to fill the screen {when}", timeout=5.0)
        except pytest.fail.Exception:
            print(f"layout {when}:", json.dumps(layout))
            raise

    def type(self, text: str) -> None:
        box: WebElement = self.root.find_element(By.CSS_SELECTOR, "#text-input")
        box.click()
        box.send_keys(text)
        self.root.find_element(By.CSS_SELECTOR, ".input-button").click()

    def click_button(self, title: str) -> None:
        buttons = [
            b
            for b in self.root.find_elements(By.CSS_SELECTOR, ".quick-reply")
            if b.text == title and b.is_enabled()
        ]
        assert buttons, f"no enabled button {title!r}"
        buttons[-1].click()

    def replies_after(self, before: int, contains: list[str], timeout: float = 20.0) -> str:
        """The bot's texts since message `before`, once they contain all of `contains`."""

        def arrived() -> str | None:
            text = "\n".join(self.bot_texts()[before:])
            return text if all(part in text for part in contains) else None

        try:
            return eventually(arrived, f"replies containing {contains}", timeout)
        except pytest.fail.Exception:
            print("bot said:", json.dumps(self.bot_texts()[before:], ensure_ascii=False))
            raise

    def buttons(self) -> list[tuple[str, bool]]:
        return [
            (b.text, b.is_enabled())
            for b in self.root.find_elements(By.CSS_SELECTOR, ".quick-reply")
        ]

    def tables(self, css: str) -> list[list[list[str]]]:
        tables = self.root.find_elements(By.CSS_SELECTOR, css)
        return [
            [
                [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
                for row in table.find_elements(By.CSS_SELECTOR, "tr")
            ]
            for table in tables
        ]


def _turns() -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = yaml.safe_load(CONVERSATION.read_text(encoding="utf-8"))["turns"]
    return turns


def _split(contains: list[Any]) -> tuple[list[str], list[str]]:
    """Expected texts, and button titles (written `[title]` in the conversation files)."""
    texts = [str(c) for c in contains if not str(c).startswith("[")]
    buttons = [str(c)[1:-1] for c in contains if str(c).startswith("[")]
    return texts, buttons


def _offered(page: Page, title: str) -> Callable[[], bool]:
    return lambda: (title, True) in page.buttons()


def _assert_conduct(page: Page) -> None:
    shown = page.read()
    for text in [m["text"] for m in shown["state"]["messages"] if m["role"] == "ai"] + shown[
        "bubbles"
    ]:
        problems = conduct_problems(text)
        assert not problems, (
            f"the page shows a text that breaks the rules of conduct: {problems}: {text}"
        )


async def test_a_debtor_negotiates_reloads_and_reaches_a_person_on_a_phone(
    phone: WebDriver, rasa_url: str
) -> None:
    started = time.monotonic()
    page = Page(phone)
    phone.get(f"{rasa_url}/webhooks/webchat/")
    assert phone.title == "还款协商助手"
    assert phone.find_element(By.ID, "notice").text == "您正在与智能助手对话，随时可以说“转人工”"
    assert phone.execute_script("return document.documentElement.clientWidth") == PHONE["width"]
    page.wait_ready()
    page.assert_chat_fills_the_screen("on the first load")
    # The Rasa conversation (what staff reply to) is derived from the page's secret token.
    sender = page.read()["state"]["conversationId"]
    assert sender and sender != page.read()["state"]["sessionId"]

    # Verification and circumstances: typed, as the conversation file says them.
    turns = _turns()
    offer_turn = next(i for i, t in enumerate(turns) if "[方案1]" in t.get("contains", []))
    for turn in turns[: offer_turn + 1]:
        before = len(page.bot_texts())
        page.type(turn["user"])
        texts, buttons = _split(turn.get("contains", []))
        said = page.replies_after(before, texts)
        for absent in turn.get("not_contains", []):
            assert absent not in said
        for title in buttons:
            eventually(_offered(page, title), f"the button {title}")

    # The offer is a table of its key figures.
    [offer] = page.tables("table.wc-offer")
    caption = page.root.find_element(By.CSS_SELECTOR, "table.wc-offer caption").text
    assert caption == "方案1：个性化分期（停息挂账）"
    figures = dict(row for row in offer if len(row) == 2)
    assert figures["期数"] == "23 期"
    assert figures["每月还款"] == "1,024.35 元"
    RESULTS.mkdir(exist_ok=True)
    phone.save_screenshot(str(RESULTS / "webchat-offer.png"))

    # "方案1": the title is shown as the debtor's message, the payload picks the plan.
    choose = turns[offer_turn + 1]
    before = len(page.bot_texts())
    page.click_button("方案1")
    texts, buttons = _split(choose["contains"])
    page.replies_after(before, texts)
    assert "方案1" in page.read()["users"]
    assert ("方案1", False) in page.buttons(), "an answered offer's button must be disabled"
    terms = page.tables("table.wc-terms")
    assert terms and terms[-1][0][0] == "1. 逾期欠款"
    confirm = turns[offer_turn + 2]
    before = len(page.bot_texts())
    page.click_button(buttons[0])  # 确认登记
    page.replies_after(before, _split(confirm["contains"])[0])

    # Reload: the history is shown again and the Rasa conversation goes on.
    shown = page.read()["bubbles"]
    phone.refresh()
    page.wait_ready()
    eventually(lambda: page.read()["bubbles"] == shown, "the history after the reload")
    page.assert_chat_fills_the_screen("after the reload")
    assert page.read()["state"]["conversationId"] == sender
    assert page.tables("table.wc-offer"), "the offer table after the reload"
    assert ("确认登记", False) in page.buttons(), "answered buttons stay disabled after a reload"
    phone.save_screenshot(str(RESULTS / "webchat-reload.png"))
    schedule_turn = turns[offer_turn + 3]
    before = len(page.bot_texts())
    page.type(schedule_turn["user"])
    page.replies_after(before, _split(schedule_turn["contains"])[0])
    [schedule] = page.tables("table.wc-schedule")
    assert schedule[0] == ["期数", "还款日", "金额（元）"]
    assert len(schedule) == 1 + 23
    assert schedule[-1][0] == "23" and schedule[-1][2] == "1,024.34"
    phone.save_screenshot(str(RESULTS / "webchat-schedule.png"))

    # A person: the staff reply appears live, marked as from a person.
    before = len(page.bot_texts())
    page.type("转人工")
    page.replies_after(before, ["案件编号"])
    before = len(page.bot_texts())
    page.type("我这个月实在周转不开")
    eventually(lambda: page.read()["typing"], "the typing indicator")
    answer = "您好，我是协商专员李专员，您的情况我已经看到了，我们一起看看怎么安排。"
    await staff_reply(rasa_url, sender, answer)
    page.replies_after(before, [answer])
    staff = eventually(lambda: page.read()["staff"], "the reply to be marked as from a person")
    assert "人工客服 李专员" in staff[-1] and answer in staff[-1]
    assert not page.read()["typing"]
    page.assert_chat_fills_the_screen("during the handoff")
    phone.save_screenshot(str(RESULTS / "webchat-handoff.png"))

    # A reply the negotiator sends while the page is closed is there when it opens again.
    phone.get("about:blank")
    later = "我查到了您的还款记录，明天上午给您答复。"
    await staff_reply(rasa_url, sender, later)
    phone.get(f"{rasa_url}/webhooks/webchat/")
    page.wait_ready()
    staff = eventually(
        lambda: [s for s in page.read()["staff"] if later in s], "the reply sent while away"
    )
    assert "人工客服 李专员" in staff[-1]

    _assert_conduct(page)
    assert time.monotonic() - started < 90


# --- a debtor who writes Traditional Chinese -------------------------------------------------

TAIWAN_CONVERSATION = (
    ROOT / "tests" / "conversations" / "traditional" / "taiwan_installment_agreement.yml"
)

#: The page's own words as a debtor sees them.
READ_WORDS = """
const root = document.querySelector('deep-chat')?.shadowRoot;
return {
  lang: document.documentElement.lang,
  status: document.getElementById('status').textContent,
  title: document.title,
  notice: document.getElementById('notice').textContent,
  askHuman: document.getElementById('ask-human').textContent,
  forget: document.getElementById('forget').textContent,
  typing: document.querySelector('#typing > span:last-child').textContent,
  placeholder: root?.querySelector('#text-input')?.getAttribute('deep-chat-placeholder-text'),
};
"""

SIMPLIFIED_WORDS = {
    "lang": "zh-CN",
    "status": "在线",
    "title": "还款协商助手",
    "notice": "您正在与智能助手对话，随时可以说“转人工”",
    "askHuman": "转人工",
    "forget": "清除记录",
    "typing": "助手正在输入…",
    "placeholder": "请输入您想说的话…",
}
TAIWAN_WORDS = {
    "lang": "zh-TW",
    "status": "線上",
    "title": "還款協商助手",
    "notice": "您正在與智慧助手對話，隨時可以說“轉人工”",
    "askHuman": "轉人工",
    "forget": "清除記錄",
    "typing": "助手正在輸入…",
    "placeholder": "請輸入您想說的話…",
}


def _words(page: Page) -> dict[str, Any]:
    words: dict[str, Any] = page.driver.execute_script(READ_WORDS)
    return words


async def test_a_taiwan_debtor_reads_the_page_and_every_reply_in_traditional(
    phone: WebDriver, rasa_url: str, lift_holds: None
) -> None:
    page = Page(phone)
    phone.get(f"{rasa_url}/webhooks/webchat/")
    page.wait_ready()
    assert _words(page) == SIMPLIFIED_WORDS
    sender = page.read()["state"]["conversationId"]

    turns: list[dict[str, Any]] = yaml.safe_load(TAIWAN_CONVERSATION.read_text("utf-8"))["turns"]
    offer_turn = next(i for i, t in enumerate(turns) if "[方案1]" in t.get("contains", []))
    for index, turn in enumerate(turns[: offer_turn + 1]):
        before = len(page.bot_texts())
        page.type(turn["user"])
        texts, buttons = _split(turn.get("contains", []) + turn.get("any_of", [])[:1])
        said = page.replies_after(before, texts)
        assert marks(said)[1] == 0, f"Simplified characters in {said!r}"
        for title in buttons:
            eventually(_offered(page, title), f"the button {title}")
        if index == 0:
            # The page's own words follow the debtor's script.
            eventually(lambda: _words(page) == TAIWAN_WORDS, "the page's words in Traditional")

    [offer] = page.tables("table.wc-offer")
    caption = page.root.find_element(By.CSS_SELECTOR, "table.wc-offer caption").text
    assert caption == "方案1：個性化分期（停息掛賬）"
    figures = dict(row for row in offer if len(row) == 2)
    assert figures["期數"] == "23 期"
    assert figures["每月還款"] == "1,024.35 元"
    assert all(marks(title)[1] == 0 for title, _ in page.buttons())
    RESULTS.mkdir(exist_ok=True)
    phone.save_screenshot(str(RESULTS / "webchat-traditional.png"))

    # "方案1" (its payload), then the terms as a table in Traditional.
    before = len(page.bot_texts())
    page.click_button("方案1")
    page.replies_after(before, _split(turns[offer_turn + 1]["contains"])[0])
    terms = page.tables("table.wc-terms")
    assert terms and terms[-1][0][0] == "1. 逾期欠款"

    # The notice's button sends "轉人工" (a Simplified one would switch the script back).
    before = len(page.bot_texts())
    phone.find_element(By.ID, "ask-human").click()
    handed = page.replies_after(before, ["案件編號"])
    assert marks(handed)[1] == 0
    assert "轉人工" in page.read()["users"]
    before = len(page.bot_texts())
    answer = "您好，我是协商专员李专员，您的情况我已经看到了，我们一起看看怎么安排。"
    await staff_reply(rasa_url, sender, answer)
    shown = convert(answer, TAIWAN)
    page.replies_after(before, [shown])
    staff = eventually(lambda: page.read()["staff"], "the reply to be marked as from a person")
    assert shown in staff[-1] and "人工客服 李專員" in staff[-1]
    assert _words(page) == TAIWAN_WORDS
    phone.save_screenshot(str(RESULTS / "webchat-traditional-handoff.png"))

    # After a reload the page opens in the conversation's script.
    phone.refresh()
    eventually(lambda: page.read()["status"] == "線上", "the page to connect, in Traditional")
    assert _words(page) == TAIWAN_WORDS
    _assert_conduct(page)


async def test_the_page_returns_to_simplified_with_the_debtor(
    phone: WebDriver, rasa_url: str
) -> None:
    page = Page(phone)
    phone.get(f"{rasa_url}/webhooks/webchat/")
    page.wait_ready()
    before = len(page.bot_texts())
    page.type("唔該，逾期會影響徵信嗎")
    said = page.replies_after(before, ["徵信"])
    assert marks(said)[1] == 0
    eventually(lambda: _words(page)["askHuman"] == "轉人工", "the page's words in Traditional")
    assert _words(page)["lang"] == "zh-HK"
    before = len(page.bot_texts())
    page.type("逾期会影响征信吗")
    said = page.replies_after(before, ["征信"])
    assert marks(said)[0] == 0
    eventually(lambda: _words(page) == SIMPLIFIED_WORDS, "the page's words in Simplified")
