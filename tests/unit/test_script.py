"""Which script a debtor reads, and replies converted to it (`bot.domain.script`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.script import (
    HONG_KONG,
    SCRIPTS,
    SIMPLIFIED,
    TAIWAN,
    TRADITIONAL,
    classify,
    convert,
    convert_buttons,
    convert_data,
    follow,
    preference,
    to_simplified,
)


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("我想申请协商还款", SIMPLIFIED),
        ("卡债缴不出来了怎么办", SIMPLIFIED),
        ("我想申請協商還款", TRADITIONAL),
        ("逾期會影響徵信嗎", TRADITIONAL),
        ("我想申請停息掛賬", TRADITIONAL),
        # Taiwan wording
        ("卡債繳不出來", TAIWAN),
        ("我的薪水不夠繳款", TAIWAN),
        ("這個月的帳單我付不出來", TAIWAN),
        # Hong Kong wording
        ("唔該俾我睇下份賬單", HONG_KONG),
        ("你到底係唔係真人啊", HONG_KONG),
        ("我而家冇錢還", HONG_KONG),
    ],
)
def test_a_clear_message_names_its_script(text: str, script: str) -> None:
    assert classify(text) == script


@pytest.mark.parametrize(
    "text",
    [
        "",
        "好",
        "1",
        "确认",  # too short to say which script the debtor reads
        "確認",
        "是的",
        "13800138000",
        "1234",
        "XS20261128-4F7A2C",
        "/affirm",
        "OK ok 123",
        "？？？！！！",
    ],
)
def test_neutral_messages_name_no_script(text: str) -> None:
    assert classify(text) is None


def test_shared_characters_only_name_no_script() -> None:
    # Every character is written the same in both scripts.
    assert classify("我要分期付款") is None
    assert classify("可以 3 个月后再还吗") == SIMPLIFIED  # 个, 后, 还 are Simplified


def test_a_mixed_message_names_no_script() -> None:
    assert classify("我想還款 但是没钱") is None
    assert classify("協商还款") is None


def test_digits_and_latin_do_not_count() -> None:
    assert classify("還 3k 可以嗎 RG2026") == TRADITIONAL
    assert classify("还 3k 可以吗 RG2026") == SIMPLIFIED


def test_the_preference_follows_the_latest_clear_message() -> None:
    assert preference([]) == SIMPLIFIED
    assert preference(["你好", "我想申請協商還款", "好", "1", "确认"]) == TRADITIONAL
    assert preference(["我想申請協商還款", "那我还是想协商还款"]) == SIMPLIFIED
    assert preference(["我想申请协商", "卡債繳不出來", "1234"]) == TAIWAN


def test_a_traditional_message_without_regional_words_keeps_the_region() -> None:
    assert follow(TAIWAN, "我想申請協商還款") == TAIWAN
    assert follow(HONG_KONG, "我想申請協商還款") == HONG_KONG
    assert follow(TAIWAN, "唔該俾我睇下份賬單") == HONG_KONG
    assert follow(SIMPLIFIED, "我想申請協商還款") == TRADITIONAL
    assert follow(HONG_KONG, "好") == HONG_KONG


def test_replies_are_converted_by_script() -> None:
    text = "请核实身份后，我们为您制定个性化分期方案，软件信息"
    assert convert(text, SIMPLIFIED) == text
    assert convert(text, None) == text
    # The characters in everyday use (核, 為), not OpenCC's standard forms, where no
    # region is known; mainland vocabulary kept
    assert convert(text, TRADITIONAL) == "請核實身份後，我們為您制定個性化分期方案，軟件信息"
    # Taiwan: characters and phrases
    assert convert(text, TAIWAN) == "請核實身份後，我們為您制定個性化分期方案，軟體資訊"
    assert convert(text, HONG_KONG) == "請核實身份後，我們為您制定個性化分期方案，軟件信息"


@pytest.mark.parametrize("script", SCRIPTS)
def test_amounts_dates_references_and_urls_are_kept(script: str) -> None:
    kept = [
        "XS20261128-4F7A2C",
        "RG20261203-0042",
        "23,560.00",
        "2026-12-31",
        "12356",
        "https://bank.example.cn/还款/协议?id=1&lang=zh",
        "www.example.cn/欠款",
    ]
    text = (
        f"协议编号 {kept[0]}，案件编号 {kept[1]}：共 {kept[2]} 元，首期 {kept[3]}（星期四）。"
        f"心理援助热线 {kept[4]}。详见 {kept[5]} 或 {kept[6]}，谢谢。"
    )
    converted = convert(text, script)
    for part in kept:
        assert part in converted
    if script != SIMPLIFIED:
        assert "協議編號" in converted and "謝謝" in converted


def test_buttons_keep_their_payloads() -> None:
    buttons = [
        {"title": "确认登记", "payload": '/affirm{"plan":"个性化分期"}'},
        {"title": "转人工", "payload": "/request_human"},
        {"payload": "/deny"},
    ]
    assert convert_buttons(buttons, TAIWAN) == [
        {"title": "確認登記", "payload": '/affirm{"plan":"个性化分期"}'},
        {"title": "轉人工", "payload": "/request_human"},
        {"payload": "/deny"},
    ]
    assert buttons[0]["title"] == "确认登记"  # the response itself is not changed


def test_a_custom_payload_has_its_texts_converted() -> None:
    custom = {
        "type": "table",
        "caption": "还款计划",
        "rows": [["1", "2026-12-31", "1,024.35 元"]],
        "link": {"url": "https://bank.example.cn/还款", "title": "查看协议"},
        "reference": "XS20261128-4F7A2C",
        "count": 3,
    }
    assert convert_data(custom, HONG_KONG) == {
        "type": "table",
        "caption": "還款計劃",
        "rows": [["1", "2026-12-31", "1,024.35 元"]],
        "link": {"url": "https://bank.example.cn/还款", "title": "查看協議"},
        "reference": "XS20261128-4F7A2C",
        "count": 3,
    }
    assert convert_data(custom, SIMPLIFIED) is custom


def test_traditional_text_folds_back_to_simplified() -> None:
    assert to_simplified("監獄 坐監 說着 軟體資訊") == "监狱 坐监 说着 软件信息"


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_is_never_changed(text: str) -> None:
    for script in SCRIPTS:
        assert convert(text, script) == text
        assert classify(text) is None
