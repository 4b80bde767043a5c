"""Every bot message converted at one point, and what the channels and pages make of it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import opencc
import pytest
import yaml
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.processor import MessageProcessor
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.console.cases import reading_note
from bot.domain.conduct import conduct_problems
from bot.domain.script import (
    HONG_KONG,
    OPENCC_CONFIG,
    SIMPLIFIED,
    TAIWAN,
    TRADITIONAL,
    convert,
    marks,
)
from bot.rasa_ext import reply_script
from bot.rasa_ext.channels.socketio import WebChatOutput
from bot.rasa_ext.channels.wechat_text import choose, parse_choice, render_message
from bot.rasa_ext.reply_script import conversation_script, render, send_bot_messages

ROOT = Path(__file__).resolve().parents[2]
LABELS_JS = ROOT / "bot" / "webchat" / "public" / "labels.js"


def _bot(text: str, script: str | None = None, **data: Any) -> BotUttered:
    return BotUttered(text, data, {"script": script} if script else {})


# --- the conversation's script ----------------------------------------------------------------


def test_a_conversation_starts_simplified() -> None:
    assert conversation_script([]) == SIMPLIFIED
    assert conversation_script([ActionExecuted("action_listen"), UserUttered("你好")]) == SIMPLIFIED


def test_the_script_follows_the_debtor_from_the_last_bot_message() -> None:
    events = [
        UserUttered("卡債繳不出來了 怎麼辦"),
        _bot("…", TAIWAN),
        UserUttered("1234"),
        UserUttered("/affirm"),
    ]
    assert conversation_script(events) == TAIWAN
    assert conversation_script([*events, UserUttered("我想申請協商還款")]) == TAIWAN
    assert conversation_script([*events, UserUttered("唔該俾我睇下")]) == HONG_KONG
    assert conversation_script([*events, UserUttered("我还是想协商还款")]) == SIMPLIFIED


def test_an_intent_payload_is_neutral_even_with_chinese_values() -> None:
    events = [_bot("…", TRADITIONAL), UserUttered('/inform{"hardship_reason":"生病住院了没工作"}')]
    assert conversation_script(events) == TRADITIONAL


def test_a_bot_message_not_yet_marked_is_looked_past() -> None:
    events = [UserUttered("我想申請協商還款"), _bot("请核实身份")]
    assert conversation_script(events) == TRADITIONAL


# --- converting a message ---------------------------------------------------------------------


def test_render_converts_text_titles_and_custom_but_not_payloads() -> None:
    event = BotUttered(
        "协议编号 XS20261128-4F7A2C 已登记",
        {
            "buttons": [{"title": "确认登记", "payload": '/affirm{"plan":"个性化分期"}'}],
            "custom": {"caption": "还款计划", "url": "https://bank.example.cn/还款"},
        },
        {"utter_action": "utter_x"},
    )
    render(event, HONG_KONG)
    assert event.text == "協議編號 XS20261128-4F7A2C 已登記"
    assert event.data["buttons"] == [
        {"title": "確認登記", "payload": '/affirm{"plan":"个性化分期"}'}
    ]
    assert event.data["custom"] == {"caption": "還款計劃", "url": "https://bank.example.cn/还款"}
    assert event.metadata == {"utter_action": "utter_x", "script": HONG_KONG}
    render(event, TAIWAN)  # converted once only
    assert event.metadata["script"] == HONG_KONG


def test_render_leaves_simplified_as_it_is_and_records_it() -> None:
    event = BotUttered("请核实身份", {"buttons": [{"title": "确认", "payload": "/affirm"}]})
    render(event, SIMPLIFIED)
    assert event.text == "请核实身份"
    assert event.data == {"buttons": [{"title": "确认", "payload": "/affirm"}]}
    assert event.metadata == {"script": SIMPLIFIED}


async def test_install_makes_every_sent_message_converted() -> None:
    reply_script.install()
    assert reply_script.installed()
    tracker = DialogueStateTracker.from_events(
        "debtor", [ActionExecuted("action_listen"), UserUttered("我的薪水不夠繳款")]
    )
    staff = BotUttered("您好，我是协商专员", {}, {"staff": "李专员"})
    events = [SlotSet("x", 1), staff, _bot("好的", None)]
    for event in events:
        tracker.update(event)
    output = CollectingOutputChannel()
    assert MessageProcessor._send_bot_messages is send_bot_messages
    await MessageProcessor._send_bot_messages(events, tracker, output)
    assert [m["text"] for m in output.messages] == ["您好，我是協商專員", "好的"]
    # The tracker keeps what the debtor read.
    assert tracker.events[-2].text == "您好，我是協商專員"
    assert tracker.events[-2].metadata == {"staff": "李專員", "script": TAIWAN}


# --- the rules of conduct in Traditional ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "再不還錢你會坐牢的",
        "你這個老賴",
        "我們是法院的，請配合",
        "不還後果自負",
        "我們會通知你的單位和家人",
    ],
)
def test_the_rules_of_conduct_find_traditional_forms(text: str) -> None:
    assert conduct_problems(text)


def _response_texts() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "domain.yml", *sorted((ROOT / "data").rglob("*.yml"))]:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for name, variants in (data.get("responses") or {}).items():
            for variant in variants:
                texts = [variant.get("text") or ""]
                texts += [b.get("title", "") for b in variant.get("buttons") or []]
                found += [(name, text) for text in texts if text]
    return found


@pytest.mark.parametrize("script", sorted(OPENCC_CONFIG))
def test_every_response_converted_keeps_the_rules_of_conduct(script: str) -> None:
    responses = _response_texts()
    assert len(responses) > 50
    broken = {
        name: problems
        for name, text in responses
        if (problems := conduct_problems(convert(text, script)))
    }
    assert broken == {}


# --- WeChat's numbered lines ------------------------------------------------------------------


def test_wechat_numbered_lines_are_in_the_message_script() -> None:
    buttons = [{"title": "確認登記", "payload": "/affirm"}, {"title": "再想想", "payload": "/deny"}]
    assert render_message({"text": "請確認", "buttons": buttons, "script": TAIWAN}) == (
        "請確認\n回覆 1 選擇「確認登記」\n回覆 2 選擇「再想想」"
    )
    assert render_message({"text": "请确认", "buttons": buttons[:1]}) == (
        "请确认\n回复 1 选择「確認登記」"
    )


@pytest.mark.parametrize(("text", "number"), [("選1", 1), ("回覆 2", 2), ("第二個", 2), ("兩", 2)])
def test_a_traditional_numbered_reply_picks_its_button(text: str, number: int) -> None:
    assert parse_choice(text) == number
    buttons = [{"title": "a", "payload": "/one"}, {"title": "b", "payload": "/two"}]
    assert choose(text, buttons) == buttons[number - 1]["payload"]


# --- the web chat ---------------------------------------------------------------------------


async def test_the_web_chat_is_told_the_script_of_every_message() -> None:
    class Server:
        def __init__(self) -> None:
            self.emitted: list[tuple[str, Any, str]] = []

        async def emit(self, event: str, data: Any, room: str, **kwargs: Any) -> None:
            self.emitted.append((event, data, room))

    server = Server()
    output = WebChatOutput(server, "bot_uttered")
    await output.send_response("s1", {"text": "您好", "script": HONG_KONG})
    await output.send_response("s1", {"text": "專員", "staff": "李专员", "script": HONG_KONG})
    buttons = [{"title": "確認", "payload": "/affirm"}]
    await output.send_response("s1", {"text": "請確認", "buttons": buttons, "script": TAIWAN})
    await output.send_response("s1", {"text": "好"})
    assert server.emitted == [
        ("bot_uttered", {"text": "您好", "script": HONG_KONG}, "s1"),
        ("bot_uttered", {"text": "專員", "staff": "李专员", "script": HONG_KONG}, "s1"),
        (
            "bot_uttered",
            {
                "text": "請確認",
                "quick_replies": [{"content_type": "text", "title": "確認", "payload": "/affirm"}],
                "script": TAIWAN,
            },
            "s1",
        ),
        ("bot_uttered", {"text": "好"}, "s1"),
    ]


def _page_labels() -> dict[str, dict[str, str]]:
    source = LABELS_JS.read_text(encoding="utf-8")
    match = re.search(
        r"// LABELS-BEGIN\nexport const LABELS = (\{.*?\});\n// LABELS-END", source, re.S
    )
    assert match
    labels: dict[str, dict[str, str]] = json.loads(match.group(1))
    return labels


def test_the_page_labels_are_opencc_conversions_of_the_simplified_ones() -> None:
    labels = _page_labels()
    simplified = labels[SIMPLIFIED]
    assert {"notice", "askHuman", "forget", "placeholder"} <= simplified.keys()
    assert simplified["askHuman"] == "转人工"
    for script, config in OPENCC_CONFIG.items():
        converter = opencc.OpenCC(config)
        assert labels[script] == {key: converter.convert(text) for key, text in simplified.items()}
    assert labels[TAIWAN]["forget"] == "清除記錄"


def test_the_page_names_the_words_it_shows_in_index_html() -> None:
    # The page starts in Simplified: index.html holds the Simplified labels.
    page = (ROOT / "bot" / "webchat" / "public" / "index.html").read_text(encoding="utf-8")
    labels = _page_labels()[SIMPLIFIED]
    for key in ("notice", "askHuman", "forget", "typing", "title"):
        assert labels[key] in page


# --- the console ------------------------------------------------------------------------------


def test_the_console_tells_the_negotiator_the_debtor_reads_traditional() -> None:
    assert reading_note([]) is None
    assert reading_note([{"from": "debtor", "text": "…"}]) is None
    assert reading_note([{"script": TAIWAN}, {"script": SIMPLIFIED}]) is None
    note = reading_note([{"script": SIMPLIFIED}, {"from": "debtor"}, {"script": HONG_KONG}])
    assert note is not None and "繁体" in note and "香港" in note


RUN_FORMAT = """
import { formatBotText } from %s;
const [text, script] = JSON.parse(process.argv[1]);
console.log(JSON.stringify(formatBotText(text, script)));
"""


def _format(text: str, script: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (it is needed for `npm ci` too)")
    script_source = RUN_FORMAT % json.dumps((LABELS_JS.parent / "format.js").as_uri())
    result = subprocess.run(
        [node, "--input-type=module", "-e", script_source, json.dumps([text, script])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    html: str = json.loads(result.stdout)
    return html


def test_a_traditional_offer_and_schedule_become_tables_with_traditional_labels() -> None:
    offer = convert(
        "方案1：个性化分期（停息挂账）。逾期欠款共 23,560.00 元分 23 期还清，"
        "每月还 1,024.35 元，首期 2026-12-14（星期一），末期 2028-10-14（星期六）；"
        "分期期间停止计息，减免罚息及费用 0.00 元。",
        TAIWAN,
    )
    html = _format(offer, TAIWAN)
    assert "<caption>方案1：個性化分期（停息掛賬）</caption>" in html
    for label, value in [
        ("還款總額", "23,560.00 元"),
        ("期數", "23 期"),
        ("每月還款", "1,024.35 元"),
    ]:
        assert f'<th scope="row">{label}</th><td>{value}</td>' in html
    schedule = convert(
        "协议编号 XS1 的还款计划（共 2 期）：\n1. 2026-12-14（星期一）  1,024.35\n"
        "2. 2027-01-14（星期四）  1,024.35",
        HONG_KONG,
    )
    html = _format(schedule, HONG_KONG)
    assert (
        '<th scope="col">期數</th><th scope="col">還款日</th><th scope="col">金額（元）</th>'
        in html
    )
    assert "<td>1,024.35</td>" in html and "協議編號 XS1" in html
    assert marks_of_simplified(html) == 0


def marks_of_simplified(html: str) -> int:
    return marks(re.sub(r"<[^>]+>", "", html))[1]
