"""The training data keeps the contract other teams rely on, and the test set is held out."""

import re
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.domain.normalize import normalize_text
from bot.tools.nlu_report import CRITICAL_INTENTS

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_INTENTS = {
    "greet", "goodbye", "affirm", "deny", "thank", "bot_challenge", "out_of_scope", "faq",
    "ask_account_status", "request_negotiation", "state_hardship", "inform", "choose_plan",
    "promise_to_pay", "request_human", "refuse_payment", "dispute_debt", "complain",
    "express_distress",
}  # fmt: skip
CONTRACT_ENTITIES = {
    "amount", "months", "date", "hardship_reason", "product", "person_name", "id_last4",
    "phone", "plan_index",
}  # fmt: skip
HARDSHIP_VALUES = {
    "unemployment", "illness", "income_drop", "business_failure", "family_emergency", "other",
}  # fmt: skip
PRODUCT_VALUES = {"credit_card", "consumer_loan", "mortgage", "car_loan"}


def _load_file(path: Path) -> TrainingData:
    return load_data(str(path))


def _load(directory: Path) -> TrainingData:
    files = sorted(directory.glob("*.yml"))
    return TrainingData().merge(*(load_data(str(f)) for f in files))


@pytest.fixture(scope="module")
def training() -> TrainingData:
    return _load(ROOT / "data" / "nlu")


@pytest.fixture(scope="module")
def held_out() -> TrainingData:
    return _load(ROOT / "tests" / "nlu")


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text)


def test_domain_keeps_the_contract_names() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert CONTRACT_INTENTS <= set(domain["intents"])
    assert CONTRACT_ENTITIES <= set(domain["entities"])


def test_knowledge_base_has_40_topics_with_8_questions_and_an_answer(
    training: TrainingData,
) -> None:
    topics: dict[str, int] = {}
    for message in training.intent_examples:
        full = message.get("intent_response_key")
        if full and full.startswith("faq/"):
            topics[full] = topics.get(full, 0) + 1
    assert len(topics) >= 40
    assert min(topics.values()) >= 8
    for topic in topics:
        answers = training.responses[f"utter_{topic}"]
        assert len(answers) == 1 and answers[0]["text"].strip()


def test_held_out_examples_are_not_in_training(
    training: TrainingData, held_out: TrainingData
) -> None:
    seen = {_key(m.get("text")) for m in training.intent_examples}
    leaked = [m.get("text") for m in held_out.intent_examples if _key(m.get("text")) in seen]
    assert leaked == []


def _bigrams(text: str) -> frozenset[str]:
    key = _key(normalize_text(text).lower())
    return frozenset(key[i : i + 2] for i in range(len(key) - 1)) or frozenset({key})


def near_duplicates(
    held_out: list[str], training: list[str], threshold: float = 0.8
) -> list[tuple[str, str]]:
    """Pairs (held-out, training) whose character-bigram Jaccard similarity is >= threshold."""
    index: dict[str, set[int]] = {}
    grams = [_bigrams(text) for text in training]
    for number, gram_set in enumerate(grams):
        for gram in gram_set:
            index.setdefault(gram, set()).add(number)
    pairs = []
    for text in held_out:
        mine = _bigrams(text)
        candidates = set().union(*(index.get(gram, set()) for gram in mine))
        for number in candidates:
            theirs = grams[number]
            if len(mine & theirs) >= threshold * len(mine | theirs):
                pairs.append((text, training[number]))
                break
    return pairs


def test_near_duplicates_are_found() -> None:
    assert near_duplicates(["我真的還不上了"], ["我真的还不上了！"]) == [
        ("我真的還不上了", "我真的还不上了！")
    ]
    assert near_duplicates(["我真的还不上了"], ["这个月还不上"]) == []


def test_no_held_out_example_is_a_near_duplicate_of_training(
    training: TrainingData, held_out: TrainingData
) -> None:
    seen = [m.get("text") for m in training.intent_examples]
    assert near_duplicates([m.get("text") for m in held_out.intent_examples], seen) == []


def test_held_out_registers_set_is_large_and_covers_every_intent() -> None:
    registers = _load_file(ROOT / "tests" / "nlu" / "heldout_registers.yml")
    assert len(registers.intent_examples) >= 400
    assert CONTRACT_INTENTS <= set(registers.intents)


def test_held_out_third_set_is_large_and_covers_the_critical_intents() -> None:
    third = _load_file(ROOT / "tests" / "nlu" / "heldout_third.yml")
    assert len(third.intent_examples) >= 400
    assert set(CRITICAL_INTENTS) <= set(third.intents)
    counts = third.number_of_examples_per_intent
    assert all(counts[intent] >= 35 for intent in CRITICAL_INTENTS), counts


def test_critical_intents_have_broad_training(training: TrainingData) -> None:
    counts = training.number_of_examples_per_intent
    for intent in CONTRACT_INTENTS - {"faq"}:
        assert counts.get(intent, 0) >= 60, intent
    for intent in CRITICAL_INTENTS:
        assert counts.get(intent, 0) >= 100, intent


def test_held_out_set_covers_every_intent(held_out: TrainingData) -> None:
    assert CONTRACT_INTENTS <= set(held_out.intents)


def test_entity_values_use_the_contract_values(training: TrainingData) -> None:
    allowed = {"hardship_reason": HARDSHIP_VALUES, "product": PRODUCT_VALUES}
    for message in training.entity_examples:
        for entity in message.get("entities", []):
            if entity["entity"] in allowed:
                value = training.entity_synonyms.get(entity["value"], entity["value"])
                assert value in allowed[entity["entity"]], (message.get("text"), entity)


def test_numbers_are_left_to_the_rule_based_extractor(training: TrainingData) -> None:
    rule_based = {"amount", "months", "date", "phone", "id_last4", "plan_index"}
    annotated = {e["entity"] for m in training.entity_examples for e in m.get("entities", [])}
    assert annotated.isdisjoint(rule_based)
