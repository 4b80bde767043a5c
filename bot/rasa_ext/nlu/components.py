"""Rasa graph components wrapping the project's Chinese text processing."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.domain.critical import CriticalMessages
from bot.domain.normalize import normalize_text
from bot.domain.policy import load_policy
from bot.domain.requests import request_in
from bot.rasa_ext.nlu.quantities import QuantityParser, as_entities

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"

#: Key under which the normaliser keeps what the user actually typed.
ORIGINAL_TEXT = "original_text"
#: Key set on a message whose text was cut to `max_length` characters.
TRUNCATED = "truncated"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class ChineseTextNormalizer(GraphComponent):
    """Turns Traditional into Simplified Chinese and full-width into half-width forms.

    Runs before the tokenizer, on training data and on every incoming message.
    The conversion keeps the text's length, so annotated entity offsets stay
    valid. Incoming messages longer than `max_length` characters are cut (the
    message keeps `truncated: true`), so a pasted essay cannot stall the server.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"opencc_config": "t2s", "max_length": 500}

    def __init__(self, config: dict[str, Any]) -> None:
        self._opencc_config = config["opencc_config"]
        self._max_length = int(config["max_length"])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseTextNormalizer:
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            text = message.get(TEXT)
            if text:
                message.set(TEXT, normalize_text(text, self._opencc_config))
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            message.set(ORIGINAL_TEXT, text, add_to_output=False)
            if len(text) > self._max_length:
                text = text[: self._max_length]
                message.set(TRUNCATED, True, add_to_output=True)
            message.set(TEXT, normalize_text(text, self._opencc_config))
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class QuantityExtractor(GraphComponent, EntityExtractorMixin):
    """Extracts amount, months, date, phone, id_last4 and plan_index by rule.

    These entities are never learned by DIET; where a DIET entity overlaps a
    span found here, the rule-based one wins and DIET's is dropped, so the two
    extractors never report the same characters. Dates are resolved relative to
    today in `timezone`.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"dictionary_path": None, "timezone": "Asia/Shanghai"}

    def __init__(self, config: dict[str, Any]) -> None:
        self._parser = QuantityParser(config["dictionary_path"])
        self._timezone = ZoneInfo(config["timezone"])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> QuantityExtractor:
        return cls(config)

    def today(self) -> date:
        return datetime.now(self._timezone).date()

    def process(self, messages: list[Message]) -> list[Message]:
        today = self.today()
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            found = as_entities(self._parser.parse(text, today))
            kept = [
                e
                for e in message.get(ENTITIES, [])
                if not any(e["start"] < q["end"] and q["start"] < e["end"] for q in found)
            ]
            message.set(ENTITIES, kept + found, add_to_output=True)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class CriticalMessageGuard(GraphComponent):
    """Corrects the intent of critical messages by the policy's `critical_messages` rules.

    Distress, complaints about conduct, disputes, requests for a person and
    "I cannot pay" are caught by word and pattern lists as well as by DIET
    (see `bot.domain.critical`). Runs after the FallbackClassifier, so a critical
    message the classifier was unsure of is not lost to the fallback. The
    rules are read from the policy file (`policy_path`, else
    `NEGOTIATION_POLICY` or the bundled one) and validated when the model loads.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"policy_path": None}

    def __init__(self, rules: CriticalMessages) -> None:
        self._rules = rules

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CriticalMessageGuard:
        return cls(load_policy(config["policy_path"]).critical_messages.compiled())

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            predicted = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            verdict = self._rules.correct(predicted, text)
            if verdict is None:
                continue
            logger.debug("critical rule %s: %s -> %s", verdict.rule, predicted, verdict.intent)
            corrected = {INTENT_NAME_KEY: verdict.intent, PREDICTED_CONFIDENCE_KEY: 1.0}
            _replace_intent(message, corrected)
        return messages


def _replace_intent(message: Message, intent: dict[str, Any]) -> None:
    """Make `intent` the message's intent, first in its ranking (without duplicates)."""
    ranking = [
        item
        for item in message.get(INTENT_RANKING_KEY) or []
        if item.get(INTENT_NAME_KEY) != intent[INTENT_NAME_KEY]
    ]
    message.set(INTENT, intent, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)


#: A letter, digit or Chinese character: a message without one says nothing to classify.
_WORD_CHARACTER = re.compile(r"[0-9A-Za-z\u3400-\u9fff\uf900-\ufaff]")
#: One Chinese character held down ("张张张张张张…"): no words either.
_ONE_CHARACTER_REPEATED = re.compile(r"\s*([\u3400-\u9fff])(?:\s*\1){5,}\s*")


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class RequestInWords(GraphComponent):
    """Gives a message the classifier could not place the request its words make.

    "都有啥方案 别绕弯子了" or "做生意赔了 一个月就六千收入 想协商下" may fall below the
    fallback threshold; their words (`bot.domain.requests.request_in`: 协商, 分期, 方案,
    欠多少 …) still say what the debtor wants. Only `nlu_fallback` and
    `out_of_scope` are replaced. Runs after the FallbackClassifier.
    """

    REPLACEABLE = frozenset({FALLBACK_INTENT, "out_of_scope"})

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> RequestInWords:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            if intent not in self.REPLACEABLE:
                continue
            request = request_in(message.get(TEXT) or "")
            if request is None:
                continue
            corrected = {INTENT_NAME_KEY: request, PREDICTED_CONFIDENCE_KEY: 1.0}
            _replace_intent(message, corrected)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class ContentlessMessageFallback(GraphComponent):
    """Marks a message of only punctuation, emoji or spaces as `nlu_fallback`.

    A statistical classifier still picks some intent for "？？？！！！", sometimes
    confidently; such a message should get the "not understood" reply instead.
    Runs after the FallbackClassifier.
    """

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ContentlessMessageFallback:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if _WORD_CHARACTER.search(text) and not _ONE_CHARACTER_REPEATED.fullmatch(text):
                continue
            fallback = {INTENT_NAME_KEY: FALLBACK_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0}
            _replace_intent(message, fallback)
        return messages
