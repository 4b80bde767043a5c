"""A reusable base class for forms whose slots are checked by normalising functions."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

#: Turns what the user said into the slot's canonical value, or None if invalid.
Normalizer = Callable[[Any, Tracker], Any]


class NormalizingFormValidation(FormValidationAction):
    """Validate each slot of a form with a normalising function.

    Subclasses map slot names to `(normalizer, response)`. After Rasa's own
    extraction, every value set for one of those slots in this turn is passed
    through its normalizer together with the tracker (so a normalizer can look
    at the message's entities and text). The result replaces the value; `None`
    rejects it: the slot is cleared, the response (which says what is expected)
    is sent, and the form asks for the slot again. A user may correct any slot
    at any time, since every value set in the turn goes through the same check.
    """

    normalizers: ClassVar[dict[str, tuple[Normalizer, str]]] = {}

    @abc.abstractmethod
    def name(self) -> str:
        """`validate_<form name>`; abstract, so the action server skips this base."""

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        required = await self.required_slots(self.domain_slots(domain), dispatcher, tracker, domain)
        events: list[EventType] = []
        for name, value in tracker.slots_to_validate().items():
            if name not in required:
                continue
            if name in self.normalizers and value is not None:
                normalizer, response = self.normalizers[name]
                value = normalizer(value, tracker)
                if value is None:
                    dispatcher.utter_message(response=response)
            events.append(SlotSet(name, value))
        return events
