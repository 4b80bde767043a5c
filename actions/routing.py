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
from actions.promise import start_promise
from actions.schedule import tell_schedule
from actions.slots import ACTING_FOR_ANOTHER, DEBTOR_ID, IDENTITY_SLOTS, PENDING_REQUEST, VERIFIED
from actions.verification import reset_identity, start_verification
from bot.domain.clock import BEIJING
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


class ActionVerifyIdentity(Action):
    """Check the three details against the bank's records once the form is complete."""

    def name(self) -> str:
        return "action_verify_identity"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot(ACTING_FOR_ANOTHER):
            return reset_identity()  # already told why (`_acting_for_another`)
        name, id_last4, phone = (tracker.get_slot(s) for s in IDENTITY_SLOTS)
        if not (name and id_last4 and phone):
            return [FollowupAction("verification_form")]
        result = await verify_identity(context().database, tracker.sender_id, name, id_last4, phone)
        if result.status == "verified":
            dispatcher.utter_message(response="utter_verified", masked_phone=mask_mobile(phone))
            # The identifiers are not kept once they have served their purpose.
            events: list[EventType] = [
                SlotSet(VERIFIED, True),
                SlotSet(DEBTOR_ID, result.debtor_id),
                *reset_identity(),
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
            return [*reset_identity(), *handoff]
        # The form is not reopened here: it would read the same message again and
        # count a second failure. The debtor's next message starts it afresh.
        dispatcher.utter_message(
            response="utter_verification_mismatch", attempts_left=result.attempts_left
        )
        return reset_identity()


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
        events += await tell_schedule(dispatcher, int(debtor))
    elif debtor_id is None:
        dispatcher.utter_message(response="utter_already_verified")
    else:
        dispatcher.utter_message(response="utter_anything_else")
    return events
