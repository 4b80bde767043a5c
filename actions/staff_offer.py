"""A negotiator's offer, shown in the debtor's conversation with confirm and decline buttons.

The staff console runs `action_send_staff_offer` in the conversation (Rasa's
`POST /conversations/<id>/execute`, the path of staff replies) once the offer is
approved. The action reads the offer from the database and shows its terms as
the assistant shows its own offers. The debtor's answer, while the negotiator
still holds the conversation, is handled by `actions.staff_offer_answer`.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import context
from actions.offers import send_terms
from actions.staff_offer_answer import current_account
from bot.store.cases import get_case
from bot.store.staff import get_staff
from bot.store.staff_offers import sent_offer_of


class ActionSendStaffOffer(Action):
    """Show the conversation's approved offer (again, if sent before) for confirmation."""

    def name(self) -> str:
        return "action_send_staff_offer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        view = await sent_offer_of(
            context().database, tracker.sender_id, statuses=("approved", "sent")
        )
        if view is None:
            return []
        account = await current_account(view.debtor_id, view.account_id)
        if account is None:
            return []
        case = await get_case(context().database, view.case_id)
        builder = await get_staff(context().database, view.created_by)
        start = len(dispatcher.messages)
        dispatcher.utter_message(response="utter_staff_offer_intro", reference=view.reference)
        send_terms(dispatcher, view.offer, account)
        # Marked as the negotiator's, as staff replies are: the REST and web chat
        # clients fetch them (`staff_messages`) and the console shows them as staff's.
        for message in dispatcher.messages[start:]:
            message["staff"] = builder.display_name if builder else ""
            message["handoff"] = case.reference if case else ""
        return []
