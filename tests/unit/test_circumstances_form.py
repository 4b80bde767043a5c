"""The circumstances form driven by random debtors: answers survive and the form ends.

A debtor answers in any order, corrects, digresses, does not know, or says
nothing useful. The driver plays Rasa's part of the form (the requested slot is
the first required one still empty; a question left to the rules is asked
again) and the validation action's part for real. Whatever the order, every
figure the debtor gave last for a field is the one kept, a needed question is
never answered with the same "not understood" twice in a row, and once the
debtor answers what is asked the form ends in a bounded number of turns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.circumstances import ValidateCircumstancesForm
from actions.slots import FORM

REQUIRED = [
    "monthly_income",
    "monthly_expenses",
    "other_repayments",
    "hardship_reason",
    "hardship_months",
    "proposed_monthly",
    "available_funds",
]
DOMAIN: dict[str, Any] = {"forms": {FORM: {"required_slots": REQUIRED}}, "slots": {}}
#: Words that name each money field in a message, as debtors write them.
CUES = {
    "monthly_income": "收入",
    "monthly_expenses": "生活开销",
    "other_repayments": "别的贷款每月",
    "proposed_monthly": "每月最多能还",
    "available_funds": "一次能凑",
}


@dataclass
class Message:
    text: str
    intent: str = "inform"
    entities: list[dict[str, Any]] = field(default_factory=list)
    #: The field and value this message states, if it states one.
    gives: tuple[str, str] | None = None


def amount_message(prefix: str, yuan: int, target: str | None) -> Message:
    text = f"{prefix}{yuan}"
    entity = {"entity": "amount", "value": yuan, "start": len(prefix), "end": len(text)}
    return Message(text, entities=[entity], gives=(target, f"{yuan}.00") if target else None)


# Built once, not in each draw: a strategy made in a draw is validated again every time.
KINDS = st.sampled_from(["named", "bare", "months", "reason", "faq", "unknown", "filler"])
YUAN = st.integers(1, 30) | st.integers(100, 50_000)
FIELDS = st.sampled_from(sorted(CUES))
MONTHS = st.integers(1, 24)
UNSURE = st.sampled_from(["不知道", "不清楚 没算过", "说不好"])
FILLERS = st.sampled_from(["嗯", "嗯嗯", "哦", "是吗"])


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(KINDS)
    yuan = draw(YUAN)
    if kind == "named":  # "收入4000": the field is in the words, whatever was asked
        target = draw(FIELDS)
        return amount_message(CUES[target], yuan, target)
    if kind == "bare":  # "4000": the answer to whatever was asked (resolved by the driver)
        return amount_message("", yuan, None)
    if kind == "months":
        months = draw(MONTHS)
        text = f"大概{months}个月"
        entity = {"entity": "months", "value": months, "start": 2, "end": len(text)}
        return Message(text, entities=[entity], gives=("hardship_months", str(months)))
    if kind == "reason":
        entity = {"entity": "hardship_reason", "value": "unemployment", "start": 0, "end": 2}
        return Message("失业了", entities=[entity], gives=("hardship_reason", "unemployment"))
    if kind == "faq":
        return Message("为什么要问这些", intent="faq")
    if kind == "unknown":
        return Message(draw(UNSURE))
    return Message(draw(FILLERS))


def answer_to(asked: str) -> Message:
    """A plain, correct answer to the question asked."""
    if asked == "hardship_reason":
        return Message(
            "生病了",
            entities=[{"entity": "hardship_reason", "value": "illness", "start": 0, "end": 2}],
            gives=(asked, "illness"),
        )
    if asked == "hardship_months":
        return Message(
            "三个月",
            entities=[{"entity": "months", "value": 3, "start": 0, "end": 3}],
            gives=(asked, "3"),
        )
    return amount_message(CUES[asked], 1000, asked)


class Form:
    """Rasa's side of the form around the real validation action."""

    def __init__(self) -> None:
        self.slots: dict[str, Any] = {"verified": True, "debtor_id": 1}
        self.events: list[dict[str, Any]] = []
        self.said: list[tuple[str, str]] = []  # (question open, response)

    @property
    def asked(self) -> str | None:
        return next((name for name in REQUIRED if self.slots.get(name) is None), None)

    def turn(self, message: Message) -> None:
        asked = self.asked
        assert asked is not None
        self.events.append(
            {
                "event": "user",
                "text": message.text,
                "parse_data": {"intent": {"name": message.intent}, "entities": message.entities},
            }
        )
        tracker = Tracker(
            sender_id="property",
            slots={**self.slots, "requested_slot": asked},
            latest_message={
                "text": message.text,
                "intent": {"name": message.intent},
                "entities": message.entities,
            },
            events=list(self.events),
            paused=False,
            followup_action=None,
            active_loop={"name": FORM},
            latest_action_name="action_listen",
        )
        dispatcher = CollectingDispatcher()
        result = asyncio.run(ValidateCircumstancesForm().run(dispatcher, tracker, DOMAIN))
        for response in (m["response"] for m in dispatcher.messages):
            self.said.append((asked, response))
            self.events.append({"event": "bot", "metadata": {"utter_action": response}})
        for event in result:
            assert event["event"] == "slot"
            self.slots[event["name"]] = event["value"]
            self.events.append(event)


@settings(max_examples=150, deadline=None)
@given(st.lists(messages(), max_size=25))
def test_answers_survive_and_the_form_ends(script: list[Message]) -> None:
    form = Form()
    expected: dict[str, str] = {}
    for message in script:
        if form.asked is None:
            break
        asked = form.asked
        form.turn(message)
        target, value = message.gives or (None, None)
        if message.gives is None and message.entities and asked in CUES:
            target, value = asked, f"{message.entities[0]['value']}.00"
        if target is not None and form.slots.get(target) == value:
            expected[target] = value  # taken (an implausible figure is refused, not kept)
    # Then the debtor simply answers what is asked (a refused figure may reopen one more).
    for _ in range(2 * len(REQUIRED)):
        if form.asked is None:
            break
        message = answer_to(form.asked)
        form.turn(message)
        if message.gives and form.slots.get(message.gives[0]) == message.gives[1]:
            expected[message.gives[0]] = message.gives[1]
    assert form.asked is None, f"the form did not end: {form.said[-6:]}"
    for name, value in expected.items():
        assert form.slots[name] == value, (name, form.said)
    # The same "not understood" is never sent twice in a row for one question.
    for (asked, said), (next_asked, next_said) in zip(form.said, form.said[1:], strict=False):
        if said.startswith("utter_invalid_") and not said.startswith("utter_invalid_again"):
            assert (asked, said) != (next_asked, next_said), form.said
