"""The verified debtor's overdue balances, and nothing before verification."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.disclosure import tell_account_status
from actions.slots import DEBTOR_ID, VERIFIED
from actions.verification import start_verification


class ActionAccountStatus(Action):
    """Tell a verified debtor what is overdue; ask anyone else to verify first."""

    def name(self) -> str:
        return "action_account_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        debtor_id = tracker.get_slot(DEBTOR_ID)
        if tracker.get_slot(VERIFIED) and debtor_id is not None:
            if await tell_account_status(dispatcher, tracker.sender_id, int(debtor_id)):
                return []
        return await start_verification(dispatcher, tracker, "ask_account_status")
