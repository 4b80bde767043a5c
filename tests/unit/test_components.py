"""The Rasa graph components on literal messages."""

from datetime import date

from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.rasa_ext.nlu.components import (
    ChineseTextNormalizer,
    ContentlessMessageFallback,
    QuantityExtractor,
    RequestInWords,
)


def normalizer(**config: object) -> ChineseTextNormalizer:
    return ChineseTextNormalizer({**ChineseTextNormalizer.get_default_config(), **config})


def extractor() -> QuantityExtractor:
    config = {**QuantityExtractor.get_default_config(), "dictionary_path": "data/nlu/jieba"}
    return QuantityExtractor(config)


def test_normalizer_converts_incoming_traditional_text() -> None:
    [message] = normalizer().process([Message(data={TEXT: "我想申請停息掛賬"})])
    assert message.get(TEXT) == "我想申请停息挂账"
    assert message.get("original_text") == "我想申請停息掛賬"


def test_normalizer_cuts_very_long_messages() -> None:
    [message] = normalizer(max_length=500).process([Message(data={TEXT: "逾" * 5000})])
    assert message.get(TEXT) == "逾" * 500
    assert message.get("truncated") is True


def test_normalizer_leaves_messages_without_text_alone() -> None:
    empty = Message(data={TEXT: ""})
    intent_only = Message(data={"intent": {"name": "greet"}})
    assert normalizer().process([empty, intent_only]) == [empty, intent_only]


def test_normalizer_keeps_training_annotations_aligned() -> None:
    example = Message(
        data={
            TEXT: "我叫張偉",
            "intent": "inform",
            ENTITIES: [{"start": 2, "end": 4, "value": "張偉", "entity": "person_name"}],
        }
    )
    data = normalizer().process_training_data(TrainingData([example]))
    [message] = data.training_examples
    assert message.get(TEXT) == "我叫张伟"
    assert message.get(TEXT)[2:4] == "张伟"


def test_extractor_adds_quantities() -> None:
    component = extractor()
    component.today = lambda: date(2026, 11, 28)  # type: ignore[method-assign]
    [message] = component.process([Message(data={TEXT: "下周五先还三千"})])
    assert [(e["entity"], e["value"]) for e in message.get(ENTITIES)] == [
        ("date", "2026-12-04"),
        ("amount", 3000),
    ]


def test_extractor_drops_statistical_entities_that_overlap_its_own() -> None:
    diet_product = {"entity": "product", "value": "credit_card", "start": 0, "end": 3}
    diet_name = {"entity": "person_name", "value": "1380013", "start": 5, "end": 12}
    message = Message(data={TEXT: "信用卡，手机13800138000", ENTITIES: [diet_product, diet_name]})
    [message] = extractor().process([message])
    assert message.get(ENTITIES) == [
        diet_product,
        {
            "entity": "phone",
            "value": "13800138000",
            "start": 6,
            "end": 17,
            "confidence_entity": 1.0,
            "extractor": "QuantityExtractor",
        },
    ]


def test_a_message_without_words_is_not_understood() -> None:
    fallback = ContentlessMessageFallback()
    punctuation = Message(
        data={
            TEXT: "？？？！！！。。。……",
            "intent": {"name": "refuse_payment", "confidence": 0.93},
            "intent_ranking": [
                {"name": "refuse_payment", "confidence": 0.93},
                {"name": "deny", "confidence": 0.05},
            ],
        }
    )
    words = Message(data={TEXT: "选2", "intent": {"name": "choose_plan", "confidence": 0.6}})
    fallback.process([punctuation, words])
    assert punctuation.get("intent") == {"name": "nlu_fallback", "confidence": 1.0}
    assert [item["name"] for item in punctuation.get("intent_ranking")] == [
        "nlu_fallback",
        "refuse_payment",
        "deny",
    ]
    assert words.get("intent") == {"name": "choose_plan", "confidence": 0.6}


def test_one_character_held_down_is_not_understood() -> None:
    held = Message(data={TEXT: "张" * 60, "intent": {"name": "dispute_debt", "confidence": 0.7}})
    laugh = Message(data={TEXT: "哈哈", "intent": {"name": "greet", "confidence": 0.5}})
    digits = Message(data={TEXT: "1111", "intent": {"name": "inform", "confidence": 0.9}})
    ContentlessMessageFallback().process([held, laugh, digits])
    assert held.get("intent") == {"name": "nlu_fallback", "confidence": 1.0}
    assert laugh.get("intent") == {"name": "greet", "confidence": 0.5}
    assert digits.get("intent") == {"name": "inform", "confidence": 0.9}


def test_an_unplaced_message_gets_the_request_its_words_make() -> None:
    plans = Message(
        data={
            TEXT: "都有啥方案 别绕弯子了",
            "intent": {"name": "nlu_fallback", "confidence": 1.0},
            "intent_ranking": [{"name": "nlu_fallback", "confidence": 1.0}],
        }
    )
    status = Message(data={TEXT: "查一下欠了多少", "intent": {"name": "out_of_scope"}})
    placed = Message(data={TEXT: "分期有手续费吗", "intent": {"name": "faq", "confidence": 0.9}})
    nothing = Message(data={TEXT: "今天天气不错", "intent": {"name": "nlu_fallback"}})
    RequestInWords().process([plans, status, placed, nothing])
    assert plans.get("intent") == {"name": "request_negotiation", "confidence": 1.0}
    assert [i["name"] for i in plans.get("intent_ranking")] == [
        "request_negotiation",
        "nlu_fallback",
    ]
    assert status.get("intent")["name"] == "ask_account_status"
    assert placed.get("intent") == {"name": "faq", "confidence": 0.9}
    assert nothing.get("intent") == {"name": "nlu_fallback"}
