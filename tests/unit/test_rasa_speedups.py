"""Rasa's check of action server answers, built once and as strict as before."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

import bot.rasa_ext.tracker_store  # noqa: F401  (the Rasa server applies the speed-ups through it)
from bot.rasa_ext import speedups as rasa_speedups

VALID = {
    "events": [{"event": "slot", "name": "verified", "value": True}],
    "responses": [{"response": "utter_greet"}, {"text": "好的", "buttons": []}],
}


def action() -> RemoteAction:
    return RemoteAction("action_account_status", None)


def test_the_rasa_server_checks_answers_with_the_validator_built_once() -> None:
    assert RemoteAction._validate_action_result is rasa_speedups._validate_action_result
    assert action()._validate_action_result(VALID) is True
    assert action()._validate_action_result({}) is True


@pytest.mark.parametrize(
    "answer",
    [
        {"events": "SlotSet"},
        {"events": [{"name": "verified"}]},  # an event without its type
        {"responses": "好的"},
        {"events": [1]},
    ],
)
def test_malformed_answers_are_refused_with_rasas_message(answer: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        action()._validate_action_result(answer)


def test_the_schema_is_not_checked_again_for_each_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = rasa_speedups.action_result_validator()
    checks = []
    monkeypatch.setattr(type(validator), "check_schema", classmethod(lambda *a: checks.append(a)))
    for _ in range(50):
        action()._validate_action_result(VALID)
    assert checks == []
