"""The whole schedule of the debtor's latest agreement."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.access import verified_debtor
from actions.context import context
from actions.formatting import money, schedule_lines
from actions.plan_state import tell_plan_state
from actions.verification import start_verification
from bot.store.agreements import (
    latest_agreement,
)


class ActionShowSchedule(Action):
    """The whole schedule of the debtor's latest agreement, for a verified debtor."""

    def name(self) -> str:
        return "action_show_schedule"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        debtor = await verified_debtor(tracker)
        if debtor is None:
            return await start_verification(dispatcher, tracker, "ask_repayment_plan")
        return await _schedule(dispatcher, debtor)


async def tell_schedule(
    dispatcher: CollectingDispatcher, tracker: Tracker, debtor_id: int
) -> list[EventType]:
    """The schedule of `debtor_id`, once the database confirms this conversation
    verified as that debtor (slots alone are not trusted); else verification."""
    if await verified_debtor(tracker, debtor_id) is None:
        return await start_verification(dispatcher, tracker, "ask_repayment_plan")
    return await _schedule(dispatcher, debtor_id)


async def _schedule(dispatcher: CollectingDispatcher, debtor_id: int) -> list[EventType]:
    agreement = await latest_agreement(context().database, debtor_id)
    if agreement is None:
        dispatcher.utter_message(response="utter_no_agreement")
        return []
    lines = schedule_lines(agreement.schedule)
    dispatcher.utter_message(
        response="utter_schedule",
        reference=agreement.reference,
        months=agreement.months,
        total=money(agreement.total_payable),
        currency=agreement.currency,
        schedule=lines,
    )
    await tell_plan_state(dispatcher, debtor_id)
    return []
