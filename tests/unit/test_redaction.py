"""Verification secrets are masked on every path a typed value takes (bot.domain.redaction)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from bot.domain.redaction import (
    MASK,
    RedactingLogFilter,
    is_masked,
    mask_secret,
    redact_event,
    redact_events,
    redact_log_line,
    redact_slots,
    redact_text,
    secrets_in,
)

MOBILE, MASKED_MOBILE, SUFFIX = "13800138000", "138****8000", "1234"
T0 = 1_790_000_000.0


def user(text: str, *entities: tuple[str, str, str], intent: str = "inform") -> dict[str, Any]:
    """A user event as Rasa serialises it; each entity is (name, value, span text)."""
    found = []
    for name, value, span in entities:
        start = text.index(span)
        found.append({"entity": name, "value": value, "start": start, "end": start + len(span)})
    return UserUttered(
        text, {"name": intent, "confidence": 0.9}, found, input_channel="rest", timestamp=T0
    ).as_dict()


def slot(name: str, value: Any) -> dict[str, Any]:
    return SlotSet(name, value, timestamp=T0).as_dict()


def stored_text(events: list[dict[str, Any]]) -> str:
    """Everything the batch would put in a database or a queue."""
    return json.dumps(events, ensure_ascii=False)


def spans(event: dict[str, Any]) -> dict[str, str]:
    """Each entity's text in the event's (redacted) text, by entity name."""
    text = event["text"]
    return {e["entity"]: text[e["start"] : e["end"]] for e in event["parse_data"]["entities"]}


def test_all_three_in_one_message() -> None:
    text = "我叫张伟，身份证后四位1234，手机13800138000，我月收入4000"
    turn = [
        user(
            text,
            ("person_name", "张伟", "张伟"),
            ("id_last4", SUFFIX, SUFFIX),
            ("phone", MOBILE, MOBILE),
            ("amount", "4000", "4000"),
        ),
        slot("debtor_name", "张伟"),
        slot("id_last4", SUFFIX),
        slot("phone", MOBILE),
        ActionExecuted("verification_form").as_dict(),
        slot("debtor_name", "张伟"),
        slot("id_last4", SUFFIX),
        slot("phone", MOBILE),
    ]

    stored = redact_events(turn)

    assert stored[0]["text"] == "我叫张伟，身份证后四位****，手机138****8000，我月收入4000"
    assert stored[0]["parse_data"]["text"] == stored[0]["text"]
    # The offsets still point at each entity; the name and the amount stay readable.
    assert spans(stored[0]) == {
        "person_name": "张伟",
        "id_last4": MASK,
        "phone": MASKED_MOBILE,
        "amount": "4000",
    }
    assert [e["value"] for e in stored[0]["parse_data"]["entities"]] == [
        "张伟",
        MASK,
        MASKED_MOBILE,
        "4000",
    ]
    assert [(e["name"], e["value"]) for e in stored if e["event"] == "slot"] == 2 * [
        ("debtor_name", "张伟"),
        ("id_last4", MASK),
        ("phone", MASKED_MOBILE),
    ]
    assert MOBILE not in stored_text(stored) and SUFFIX not in stored_text(stored)
    # The input is left as it was: the actions of the turn still need it.
    assert turn[0]["text"] == text


def test_one_by_one_as_the_form_asks() -> None:
    """Answers the form takes whole (from_text): no entity, only the slot says what they are."""
    turns = [
        [user("我叫张伟", ("person_name", "张伟", "张伟")), slot("debtor_name", "张伟")],
        [user("1234"), slot("id_last4", "1234"), slot("id_last4", "1234")],
        [user("13800138000", ("phone", MOBILE, MOBILE)), slot("phone", MOBILE)],
    ]
    stored = [redact_events(turn) for turn in turns]
    assert [turn[0]["text"] for turn in stored] == ["我叫张伟", MASK, MASKED_MOBILE]
    assert stored[1][1:] == [slot("id_last4", MASK), slot("id_last4", MASK)]
    assert stored[2][1] == slot("phone", MASKED_MOBILE)


def test_a_suffix_typed_bare_is_known_from_the_slot_the_form_set() -> None:
    text = "张伟 1234 13800138000"
    turn = [
        user(text, ("person_name", "张伟", "张伟"), ("phone", MOBILE, MOBILE)),
        # Asked for the name, the form took the whole message first.
        slot("debtor_name", text),
        slot("debtor_name", "张伟"),
        slot("phone", MOBILE),
        slot("id_last4", SUFFIX),
    ]
    stored = redact_events(turn)
    assert stored[0]["text"] == "张伟 **** 138****8000"
    assert stored[1] == slot("debtor_name", "张伟 **** 138****8000")
    assert spans(stored[0]) == {"person_name": "张伟", "phone": MASKED_MOBILE}


def test_a_correction_masks_the_old_and_the_new_mobile() -> None:
    first = [user("手机13900139009", ("phone", "13900139009", "13900139009"))]
    text = "不对，手机号是13900139001"
    correction = [user(text, ("phone", "13900139001", "13900139001")), slot("phone", "13900139001")]
    assert redact_events(first)[0]["text"] == "手机139****9009"
    stored = redact_events(correction)
    assert stored[0]["text"] == "不对，手机号是139****9001"
    assert stored[1] == slot("phone", "139****9001")


def test_a_failed_attempt_is_masked_like_a_right_one() -> None:
    text = "我叫张伟，身份证尾号9999，手机13800138000"
    turn = [
        user(text, ("id_last4", "9999", "9999"), ("phone", MOBILE, MOBILE)),
        slot("id_last4", "9999"),
        slot("phone", MOBILE),
    ]
    assert redact_events(turn)[0]["text"] == "我叫张伟，身份证尾号****，手机138****8000"


def test_a_suffix_also_read_as_an_amount_is_masked_in_both() -> None:
    """The extractor reads a bare "1234" as an amount too; its value is the suffix all the same."""
    turn = [user("1234", ("amount", 1234, "1234")), slot("id_last4", "1234")]
    stored = redact_events(turn)
    assert stored[0]["text"] == MASK
    assert stored[0]["parse_data"]["entities"][0]["value"] == MASK
    # Given elsewhere in the turn than in the text, the number is masked by its value.
    other = [user("好的", ("amount", 1234, "好的")), slot("id_last4", "1234")]
    assert redact_events(other)[0]["parse_data"]["entities"][0]["value"] == MASK


def test_a_badly_typed_mobile_is_masked_in_the_slot_and_in_the_text() -> None:
    """Ten digits for the mobile: rejected by the form, still close to the real one."""
    turn = [user("1380013800"), slot("phone", "1380013800"), slot("phone", None)]
    stored = redact_events(turn)
    assert stored[0]["text"] == MASK
    assert [e["value"] for e in stored[1:]] == [MASK, None]


def test_words_the_form_rejected_stay_readable() -> None:
    """ "我不记得了" for the ID suffix is no secret: the negotiator may read it."""
    turn = [user("我不记得了"), slot("id_last4", "我不记得了"), slot("id_last4", None)]
    stored = redact_events(turn)
    assert stored[0]["text"] == "我不记得了"
    assert stored[1] == slot("id_last4", MASK)


def test_chinese_numerals() -> None:
    text = "身份证后四位一二三四，手机幺三八零零幺三八零零零"
    spoken = "幺三八零零幺三八零零零"
    turn = [user(text, ("id_last4", "1234", "一二三四"), ("phone", MOBILE, spoken))]
    stored = redact_events(turn)
    assert stored[0]["text"] == "身份证后四位****，手机138****8000"
    assert spans(stored[0]) == {"id_last4": MASK, "phone": MASKED_MOBILE}
    # Read out with pauses and without any entity found, a mobile is still one.
    assert redact_text("我的号码是幺三八 零零幺三 八零零零") == "我的号码是138****8000"


@pytest.mark.parametrize(
    "typed",
    [
        "138 0013 8000",
        "138-0013-8000",
        "+86 13800138000",
        "+8613800138000",
        "0086 138 0013 8000",
        "１３８００１３８０００",
    ],
)
def test_spaced_prefixed_and_full_width_mobiles(typed: str) -> None:
    assert redact_text(f"手机{typed}。") == f"手机{MASKED_MOBILE}。"


def test_spaced_suffix_digits_given_as_the_slot() -> None:
    turn = [user("1 2 3 4"), slot("id_last4", "1 2 3 4"), slot("id_last4", SUFFIX)]
    assert redact_events(turn)[0]["text"] == MASK


def test_a_whole_national_id_is_masked() -> None:
    assert redact_text("身份证110101199003071234") == "身份证****"
    assert redact_text("11010119900307123x号") == "****号"


@pytest.mark.parametrize(
    "text",
    [
        "我月收入4000",
        "每月支出3500元，还有别的贷款2000",
        "我想分12期",
        "卡号尾号是5678吗",  # no slot or entity says it is the ID suffix
        "案件编号RG20261129-4F7A2C",
        "2026年12月3日还款8000",
    ],
)
def test_amounts_and_other_numbers_stay_readable(text: str) -> None:
    turn = [user(text), slot("monthly_income", "4000")]
    assert redact_events(turn) == turn


def test_a_secret_is_searched_for_in_its_own_turn_only() -> None:
    """The suffix 4000 masks 4000 in its turn; an income of 4000 later is untouched."""
    verification = [user("后四位4000"), slot("id_last4", "4000")]
    income = [user("我月收入4000"), slot("monthly_income", "4000")]
    assert redact_events(verification)[0]["text"] == "后四位****"
    assert redact_events(income) == income


def test_the_state_row_keeps_masked_secrets_and_everything_else() -> None:
    values = {
        "debtor_name": "张伟",
        "id_last4": SUFFIX,
        "phone": MOBILE,
        "monthly_income": "4000",
        "hardship_detail": "失业了，联系我13800138000",
        "verified": False,
        "offers": [{"offer_id": "a13800138000b", "months": 12}],
        "selected_offer": None,
    }
    assert redact_slots(values, secrets_in([slot("id_last4", SUFFIX)])) == {
        **values,
        "id_last4": MASK,
        "phone": MASKED_MOBILE,
        "hardship_detail": f"失业了，联系我{MASKED_MOBILE}",
    }


@pytest.mark.parametrize(
    ("channel", "sender", "metadata"),
    [
        ("rest", "e2e-0d4c", {}),
        # The web chat page may send metadata of its own: it is text like any other.
        ("socketio", "webchat:4f7e950af96530487f5c98e7", {"note": "手机13800138000"}),
        # A WeChat sender id (the follower's openid) may hold digits like a mobile.
        ("wechat", "wechat:o13812345678AbCdEfGhIjKlMnOp", {}),
    ],
)
def test_every_channel_is_masked_alike(channel: str, sender: str, metadata: dict) -> None:
    text = "我是张伟 身份证尾号1234 手机13800138000"
    message = UserUttered(
        text,
        {"name": "inform", "confidence": 0.9},
        [{"entity": "id_last4", "value": SUFFIX, "start": 10, "end": 14}],
        input_channel=channel,
        metadata=metadata,
        timestamp=T0,
    )
    published = redact_events([{"sender_id": sender, **message.as_dict()}])[0]
    assert published["text"] == "我是张伟 身份证尾号**** 手机138****8000"
    assert published["sender_id"] == sender and published["input_channel"] == channel
    said = json.dumps({k: v for k, v in published.items() if k != "sender_id"})
    assert MOBILE not in said and SUFFIX not in said


def test_identifiers_are_left_alone() -> None:
    event = user("手机13800138000", ("phone", MOBILE, MOBILE))
    event["message_id"] = "13812345678901"
    event["metadata"] = {"wechat_msg_id": "13812345678", "note": "备用13912345678"}
    stored = redact_event(event)
    assert stored["message_id"] == "13812345678901"
    assert stored["metadata"] == {"wechat_msg_id": "13812345678", "note": "备用139****5678"}


def test_bot_texts_and_other_events_pass_through() -> None:
    events = [
        BotUttered("核实成功，手机138****8000", metadata={"staff": "李专员"}).as_dict(),
        ActionExecuted("action_verify_identity").as_dict(),
    ]
    assert redact_events(events) == events


def test_redaction_is_idempotent() -> None:
    turn = [
        user("我叫张伟 身份证后四位1234 手机+86 138 0013 8000", ("id_last4", SUFFIX, SUFFIX)),
        slot("id_last4", SUFFIX),
        slot("phone", MOBILE),
    ]
    once = redact_events(turn)
    assert redact_events(once) == once
    assert [redact_event(event) for event in once] == once


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MOBILE, MASKED_MOBILE),
        ("+86 138 0013 8000", MASKED_MOBILE),
        (SUFFIX, MASK),
        ("123X", MASK),
        (1234, MASK),
        ("我不记得", MASK),
        (MASK, MASK),
        (MASKED_MOBILE, MASKED_MOBILE),
        (None, None),
    ],
)
def test_mask_secret(value: Any, expected: Any) -> None:
    assert mask_secret(value) == expected
    assert is_masked(mask_secret(value)) or value is None


# --- logs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Received user message '张伟 1234 13800138000' with intent '{'name': 'inform'}' and "
        "entities '[{'entity': 'id_last4', 'start': 3, 'end': 7, 'value': '1234'}]'",
        "rasa_events=[SlotSet(key: id_last4, value: 1234), SlotSet(key: phone, value: 13800138000)]"
        " text 1234",
        'processor.actions.log {"event": "slot", "name": "id_last4", "value": "1234"} 1234',
        "Current slot values: \n\tdebtor_name: 张伟\n\tid_last4: 1234\n\tphone: 13800138000\n",
        "forms.validate.prefilled_slots prefilled_slots={'id_last4': '1234'} 1234",
    ],
)
def test_log_lines_name_no_secret(line: str) -> None:
    redacted = redact_log_line(line)
    assert SUFFIX not in redacted and MOBILE not in redacted
    assert redact_log_line(redacted) == redacted


@pytest.mark.parametrize(
    "line",
    [
        "processor.message.parse parse_data_text='张伟 1234 13800138000' parse_data_entities=[]",
        '{"event": "processor.message.parse", "parse_data_text": "\\u5f20\\u4f1f 1234"}',
        "rasa_events=[{'event': 'user', 'text': '1234', 'parse_data': {}}]",
        '{"parse_data_text": "1234", "parse_data_entities": [{"entity": "amount", "value": 1234}]}',
        '{"current_states": "[state 3] user text: 1234 | previous action name: action_listen"}',
        '{"slot_values": "\\tdebtor_name: \\u5f20\\u4f1f\\n\\tid_last4: 1234\\n\\tphone: None"}',
    ],
)
def test_a_message_quoted_in_a_debug_line_shows_no_bare_suffix(line: str) -> None:
    """Rasa logs the message before anything says that its four digits are the ID suffix."""
    assert SUFFIX not in redact_log_line(line)


def test_a_log_line_without_secrets_is_unchanged() -> None:
    line = "127.0.0.1 POST /webhooks/rest/webhook 200 1234 bytes in 0.13 s (pid 13800)"
    assert redact_log_line(line) == line


def test_the_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingLogFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Received user message '%s' for slot id_last4: %s", "手机13800138000", 1234)
        try:
            raise ValueError("not a mobile: 13800138000")
        except ValueError:
            logger.exception("turn failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert MOBILE not in written and SUFFIX not in written
    assert f"手机{MASKED_MOBILE}" in written and "ValueError: not a mobile" in written
