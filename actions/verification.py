"""Identity verification: nothing about any account is said before it succeeds."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import context
from actions.escalation import hand_off
from actions.forms import Normalizer, NormalizingFormValidation
from actions.slots import ACTING_FOR_ANOTHER, IDENTITY_SLOTS, PENDING_REQUEST, REQUESTED_SLOT
from bot.domain.clock import BEIJING
from bot.domain.normalize import normalize_text
from bot.domain.redaction import install_log_redaction, is_masked
from bot.domain.requests import request_in
from bot.domain.third_party import speaks_for_another
from bot.profile import scale_profile
from bot.store import verification_progress as progress
from bot.store.identity import (
    active_lock,
    normalize_id_last4,
    normalize_mobile,
    normalize_name,
)

# The action server loads every module of `actions`: its log lines are masked too.
install_log_redaction()
# A replica without the shared VERIFICATION_KEY (or with a bad one) does not start.
if scale_profile():
    progress.cipher()

#: Set once the writer says they act for the debtor: never verified in this conversation.
#: Words debtors put around their name ("我叫张伟", "本人姓名：张伟。").
_NAME_WRAPPING = re.compile(
    r"^(?:(?:我的名字是|我的名字叫|我的姓名是|名字是|名字叫|姓名是|姓名|我叫|我是|本人是|本人|叫)[:：\s]*)+"
    r"|[。.,，!！~\s]+$"
)
_CJK_ONLY = re.compile(r"[\u3400-\u9fff]+")
MAX_NAME_CHARS = 20
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[\s-]?)?1[3-9][0-9](?:[\s-]?[0-9]){8}(?![0-9])")
#: A whole national ID: 18 characters, or 15 digits for the old cards.
_FULL_ID = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9])")
_LAST4 = re.compile(r"(?<![0-9])[0-9]{3}[0-9Xx](?![0-9A-Za-z])")


def _entity(tracker: Tracker, name: str) -> Any:
    return next(tracker.get_latest_entity_values(name), None)


def name_from(value: Any, tracker: Tracker) -> str | None:
    """The debtor's name: the extracted entity if any, else the text without wrapping.

    A message that is nothing but a long run of Chinese characters is not a name,
    even if a few of its characters were tagged as one.
    """
    message = _NAME_WRAPPING.sub("", normalize_text(tracker.latest_message.get("text") or ""))
    if _CJK_ONLY.fullmatch(message) and len(message) > MAX_NAME_CHARS:
        return None
    entity = _entity(tracker, "person_name")
    text = entity if isinstance(entity, str) else str(value)
    return normalize_name(_NAME_WRAPPING.sub("", normalize_text(text).strip()))


def last4_from(value: Any, tracker: Tracker) -> str | None:
    """Last four characters of the national ID, from the entity or the typed text."""
    entity = _entity(tracker, "id_last4")
    if isinstance(entity, str):
        return normalize_id_last4(entity)
    text = _MOBILE.sub(" ", str(value))
    full = _FULL_ID.search(text)
    if full:
        return normalize_id_last4(full.group(0)[-4:])
    candidates = _LAST4.findall(text)
    return normalize_id_last4(candidates[-1]) if len(candidates) == 1 else None


def mobile_from(value: Any, tracker: Tracker) -> str | None:
    """The 11-digit mobile number, from the entity or the typed text."""
    entity = _entity(tracker, "phone")
    if isinstance(entity, str):
        return normalize_mobile(entity)
    found = _MOBILE.search(str(value))
    return normalize_mobile(found.group(0)) if found else normalize_mobile(str(value))


def _given_before(normalizer: Normalizer) -> Normalizer:
    """`normalizer`, except that a masked value (given in an earlier turn) is kept as it is."""

    def normalize(value: Any, tracker: Tracker) -> Any:
        return value if is_masked(value) else normalizer(value, tracker)

    return normalize


class ValidateVerificationForm(NormalizingFormValidation):
    """Checks the name, ID digits and mobile number as the debtor gives them.

    The conversation's tracker keeps the ID digits and the mobile masked, so
    each one given is kept in `bot.store.verification_progress` for the check;
    a masked value whose piece is not kept there (given outside the form, or
    expired) is dropped, and the form asks for it again.
    """

    normalizers: ClassVar[dict[str, tuple[Normalizer, str]]] = {
        "debtor_name": (name_from, "utter_invalid_debtor_name"),
        "id_last4": (_given_before(last4_from), "utter_invalid_id_last4"),
        "phone": (_given_before(mobile_from), "utter_invalid_phone"),
    }

    def name(self) -> str:
        return "validate_verification_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if speaks_for_another(tracker.latest_message.get("text") or ""):
            # Whatever name follows is the debtor's, not the writer's: no verification.
            return [*await _acting_for_another(dispatcher, tracker), SlotSet(REQUESTED_SLOT, None)]
        return await super().run(dispatcher, tracker, domain)

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The details Rasa extracted, plus bare ID digits given together with others.

        "张伟 1234 13800138000" names no ID: its four digits are the ID suffix only
        because a name or a mobile came with them. A lone four-digit number asked
        for something else is left alone (it could be an amount, and a wrong
        suffix would count as a failed verification).
        """
        events = await super().get_validation_events(dispatcher, tracker, domain)
        given = {e["name"] for e in events if e.get("event") == "slot" and e.get("value")}
        if "id_last4" not in given and not tracker.get_slot("id_last4") and given:
            text = tracker.latest_message.get("text") or ""
            found = last4_from(normalize_text(text), tracker)
            if found:
                events.append(SlotSet("id_last4", found))
        return await _keep_pieces(tracker.sender_id, events)


async def _keep_pieces(conversation_id: str, events: list[EventType]) -> list[EventType]:
    """Keep the ID digits and mobile set in `events`; drop masked ones not kept before."""
    database = context().database
    kept: dict[str, str] | None = None
    checked: list[EventType] = []
    for event in events:
        name, value = event.get("name"), event.get("value")
        if event.get("event") != "slot" or name not in progress.PIECES:
            checked.append(event)
            continue
        if is_masked(value):
            if kept is None:
                kept = await progress.recall(database, conversation_id)
            if name not in kept:
                event = SlotSet(name, None)
        elif value is not None:
            await progress.remember(database, conversation_id, name, value)
        checked.append(event)
    return checked


async def _acting_for_another(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType]:
    """Say what someone acting for the debtor may do here, and keep nothing of theirs."""
    dispatcher.utter_message(response="utter_third_party")
    identity = await drop_identity(tracker)
    return [SlotSet(ACTING_FOR_ANOTHER, True), *identity, SlotSet(PENDING_REQUEST, None)]


def reset_identity() -> list[EventType]:
    return [SlotSet(slot, None) for slot in IDENTITY_SLOTS]


async def drop_identity(tracker: Tracker) -> list[EventType]:
    """Forget the details given so far, here and in the kept pieces."""
    await progress.forget(context().database, tracker.sender_id)
    return reset_identity()


#: Requests that need a verified debtor; the one made is answered after verification.
PENDING_REQUESTS = {
    "ask_account_status",
    "request_negotiation",
    "state_hardship",
    "promise_to_pay",
    "ask_repayment_plan",
}


async def start_verification(
    dispatcher: CollectingDispatcher, tracker: Tracker, pending: str | None
) -> list[EventType]:
    """Open the verification form, remembering `pending`, unless locked out.

    Someone who says they write for the debtor is not verified at all.
    """
    if tracker.get_slot(ACTING_FOR_ANOTHER) or speaks_for_another(
        tracker.latest_message.get("text") or ""
    ):
        return await _acting_for_another(dispatcher, tracker)
    events: list[EventType] = []
    if pending not in PENDING_REQUESTS:
        # "查下我欠了多少 王芳 …" is often read as plain information: the words say.
        pending = request_in(tracker.latest_message.get("text") or "")
    if pending in PENDING_REQUESTS:
        events.append(SlotSet(PENDING_REQUEST, pending))
    locked_until = await active_lock(context().database, tracker.sender_id)
    if locked_until is not None:
        dispatcher.utter_message(
            response="utter_verification_locked",
            unlock_time=locked_until.astimezone(BEIJING).strftime("%H:%M"),
        )
        handoff, _ = await hand_off(dispatcher, tracker, "verification_failed")
        return [*events, *await drop_identity(tracker), *handoff]
    dispatcher.utter_message(response="utter_verification_intro")
    return [*events, FollowupAction("verification_form")]


class ActionLeaveVerification(Action):
    """The debtor leaves in the middle of verification: nothing half-given is kept."""

    def name(self) -> str:
        return "action_leave_verification"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_leave_verification")
        return [
            *await drop_identity(tracker),
            SlotSet(PENDING_REQUEST, None),
            SlotSet(REQUESTED_SLOT, None),
        ]
