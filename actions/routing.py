"""After verification, the request the debtor made before it: answered, not dropped."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.circumstances import start_circumstances
from actions.context import context
from actions.disclosure import tell_account_status
from actions.escalation import hand_off
from actions.plan_state import tell_broken_plan
from actions.promise import start_promise
from actions.schedule import tell_schedule
from actions.slots import ACTING_FOR_ANOTHER, DEBTOR_ID, IDENTITY_SLOTS, PENDING_REQUEST, VERIFIED
from actions.verification import drop_identity, start_verification
from bot.domain.clock import BEIJING
from bot.domain.redaction import is_masked
from bot.store import verification_progress as progress
from bot.store.identity import (
    mask_mobile,
    verify_identity,
)


class ActionStartVerification(Action):
    """Start the verification form, unless already verified or locked out."""

    def name(self) -> str:
        return "action_start_verification"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if tracker.get_slot(VERIFIED):
            if intent == "inform":
                dispatcher.utter_message(response="utter_inform_ack")
                return []
            return await continue_request(dispatcher, tracker, intent)
        return await start_verification(dispatcher, tracker, intent)


async def _details(tracker: Tracker) -> dict[str, str | None]:
    """The three details as typed: a slot given this turn, else the piece kept for it.

    The tracker keeps the ID digits and the mobile masked once a turn is stored;
    the form's validation kept what was typed (`bot.store.verification_progress`).
    """
    slots = {slot: tracker.get_slot(slot) for slot in IDENTITY_SLOTS}
    kept = {}
    if any(is_masked(value) for value in slots.values()):
        kept = await progress.recall(context().database, tracker.sender_id)
    return {
        slot: (kept.get(slot) if is_masked(value) else value) or None
        for slot, value in slots.items()
    }


class ActionVerifyIdentity(Action):
    """Check the three details against the bank's records once the form is complete."""

    def name(self) -> str:
        return "action_verify_identity"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot(ACTING_FOR_ANOTHER):
            return await drop_identity(tracker)  # already told why (`_acting_for_another`)
        details = await _details(tracker)
        missing = [slot for slot, value in details.items() if value is None]
        if missing:
            # Not given, or kept too long ago: the form asks for it again.
            cleared = [SlotSet(slot, None) for slot in missing if tracker.get_slot(slot)]
            return [*cleared, FollowupAction("verification_form")]
        name, id_last4, phone = (details[slot] for slot in IDENTITY_SLOTS)
        result = await verify_identity(context().database, tracker.sender_id, name, id_last4, phone)
        # Whatever the outcome, the details given have served their purpose.
        reset = await drop_identity(tracker)
        if result.status == "verified":
            dispatcher.utter_message(
                response="utter_verified", masked_phone=mask_mobile(phone or "")
            )
            if result.debtor_id is not None:
                await tell_broken_plan(dispatcher, tracker.sender_id, result.debtor_id)
            events: list[EventType] = [
                SlotSet(VERIFIED, True),
                SlotSet(DEBTOR_ID, result.debtor_id),
                *reset,
            ]
            pending = tracker.get_slot(PENDING_REQUEST)
            return events + await continue_request(dispatcher, tracker, pending, result.debtor_id)
        if result.status == "locked":
            unlock = result.locked_until.astimezone(BEIJING) if result.locked_until else None
            dispatcher.utter_message(
                response="utter_verification_locked",
                unlock_time=unlock.strftime("%H:%M") if unlock else "",
            )
            # A person can verify the debtor another way.
            handoff, _ = await hand_off(dispatcher, tracker, "verification_failed")
            return [*reset, *handoff]
        # The form is not reopened here: it would read the same message again and
        # count a second failure. The debtor's next message starts it afresh.
        dispatcher.utter_message(
            response="utter_verification_mismatch", attempts_left=result.attempts_left
        )
        return reset


async def continue_request(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    pending: str | None,
    debtor_id: int | None = None,
) -> list[EventType]:
    """After verification, answer what the debtor asked for before it."""
    events: list[EventType] = [SlotSet(PENDING_REQUEST, None)]
    debtor = debtor_id if debtor_id is not None else tracker.get_slot(DEBTOR_ID)
    if pending == "ask_account_status":
        await tell_account_status(dispatcher, tracker.sender_id, int(debtor))
    elif pending in {"request_negotiation", "state_hardship"}:
        events += await start_circumstances(dispatcher, tracker, debtor_id)
    elif pending == "promise_to_pay":
        events += await start_promise(dispatcher, tracker, int(debtor))
    elif pending == "ask_repayment_plan":
        events += await tell_schedule(dispatcher, tracker, int(debtor))
    elif debtor_id is None:
        dispatcher.utter_message(response="utter_already_verified")
    else:
        dispatcher.utter_message(response="utter_anything_else")
    return events
