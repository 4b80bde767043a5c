"""A negotiator's offer in the chat, on literal trackers against SQLite: shown with its
buttons, then confirmed, declined, confirmed late, or confirmed after the balance changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, BotUttered, ConversationPaused, EventType, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.context import context
from actions.escalation import ActionWatchHeldConversation
from actions.staff_offer import ActionSendStaffOffer
from bot.domain.clock import beijing_today
from bot.domain.staff_offers import OfferTerms, StaffOffer, build_staff_offer
from bot.store import staff
from bot.store import staff_offers as store
from bot.store.accounts import account_summaries
from bot.store.agreements import position
from bot.store.identity import verify_identity
from tests.support.actions import action_context
from tests.support.staff import cheap_argon2
from tests.support.staff_offers import CIRCUMSTANCES, proposal_case

SENDER = "conversation-staff-offer"
SLOTS = {"verified": True}


@pytest.fixture
def offer(seeded_url: str) -> Iterator[store.OfferView]:
    """王芳's case with an approved offer of 36 months, and her verified conversation."""
    with action_context(seeded_url) as ctx, cheap_argon2():
        db = ctx.database

        async def prepare() -> store.OfferView:
            result = await verify_identity(db, SENDER, "王芳", "4321", "13700137002")
            assert result.status == "verified"
            case = await proposal_case(db, SENDER, beijing_today())
            member = await staff.create_staff(
                db, "alice", "李专员", "a long password", "negotiator"
            )
            [summary] = [a for a in await account_summaries(db, case.debtor_id) if a.account_id]
            terms = OfferTerms(
                "personalized_installment", beijing_today() + timedelta(days=15), 36, note="资助"
            )
            built = build_staff_offer(
                terms, position(summary), CIRCUMSTANCES, "negotiator", beijing_today(), ctx.policy
            )
            assert isinstance(built, StaffOffer)
            return await store.create_offer(
                db,
                case_id=case.case_id,
                conversation_id=SENDER,
                debtor_id=case.debtor_id,
                proposal_reference=case.proposal_reference,
                built=built,
                circumstances=CIRCUMSTANCES,
                builder=member,
                today=beijing_today(),
            )

        view = asyncio.run(prepare())
        SLOTS["debtor_id"] = view.debtor_id  # type: ignore[assignment]
        yield view


def _message(response: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "text": None,
        "buttons": [],
        "elements": [],
        "custom": {},
        "template": response,
        "response": response,
        "image": None,
        "attachment": None,
        **kwargs,
    }


def _said(text: str, intent: str) -> list[EventType]:
    return [
        ActionExecuted("action_listen"),
        UserUttered(text, {"intent": {"name": intent}, "entities": []}, input_channel="rest"),
    ]


def _shown() -> list[EventType]:
    """The conversation until the offer was shown: handed over, then the console's action."""
    return [
        *_said("我想协商", "request_negotiation"),
        ConversationPaused(),
        ActionExecuted("action_send_staff_offer"),
        BotUttered("协商专员为您制定了还款方案"),
    ]


def _answer(text: str, intent: str, before: list[EventType]) -> Tracker:
    return Tracker(
        sender_id=SENDER,
        slots=dict(SLOTS),
        latest_message={"text": text, "intent": {"name": intent}, "entities": []},
        events=[*before, *_said(text, intent)],
        paused=True,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def _run(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], list[EventType]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return dispatcher.messages, events


def _send(view: store.OfferView) -> store.OfferView:
    async def sent() -> store.OfferView:
        member = await staff.get_staff(context().database, view.created_by)
        assert member is not None
        return await store.mark_sent(context().database, view.id, member, context().policy)

    return asyncio.run(sent())


def _status(view: store.OfferView) -> str:
    found = asyncio.run(store.get_offer(context().database, view.id))
    assert found is not None
    return found.status


def _count(table: str) -> int:
    url = context().database.engine.url.set(drivername="sqlite")
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()


def test_the_offer_is_shown_with_its_terms_and_buttons_as_the_negotiators(
    offer: store.OfferView,
) -> None:
    messages, events = _run(ActionSendStaffOffer(), _answer("", "inform", []))
    assert events == []
    marks = {"staff": "李专员", "handoff": messages[0]["handoff"]}
    assert marks["handoff"].startswith("RG")
    assert [m["response"] for m in messages] == [
        "utter_staff_offer_intro",
        "utter_terms_personalized_installment",
        "utter_terms_card_commitment",
        "utter_terms_missed_installment",
        "utter_confirm_terms",
    ]
    assert messages[0] == _message("utter_staff_offer_intro", reference=offer.reference, **marks)
    terms = messages[1]
    assert (terms["months"], terms["monthly"], terms["total"]) == (36, "5,158.34", "185,700.00")
    assert all(m["staff"] == "李专员" for m in messages)


def test_an_explicit_confirmation_records_the_agreement_once(offer: store.OfferView) -> None:
    _send(offer)
    messages, events = _run(ActionWatchHeldConversation(), _answer("/affirm", "affirm", _shown()))
    assert events == []
    assert [m["response"] for m in messages] == [
        "utter_agreement_recorded",
        "utter_collections_paused",
    ]
    assert messages[0]["months"] == 36 and messages[0]["first_amount"] == "5,158.34"
    assert _status(offer) == "accepted"
    assert (_count("agreements"), _count("agreement_installments")) == (1, 36)
    # Confirmed again: nothing more is recorded, nothing is said.
    again = _answer("/affirm", "affirm", [*_shown(), *_said("/affirm", "affirm")])
    assert _run(ActionWatchHeldConversation(), again) == ([], [])
    assert _count("agreements") == 1


def test_a_decline_records_nothing(offer: store.OfferView) -> None:
    _send(offer)
    messages, _ = _run(ActionWatchHeldConversation(), _answer("不要", "deny", _shown()))
    assert messages == [_message("utter_staff_offer_declined")]
    assert _status(offer) == "declined" and _count("agreements") == 0


def test_a_yes_to_something_else_is_not_a_confirmation(offer: store.OfferView) -> None:
    _send(offer)
    before = [*_shown(), *_said("首期能晚几天吗", "inform"), BotUttered("可以，我帮您看看")]
    assert _run(ActionWatchHeldConversation(), _answer("好", "affirm", before)) == ([], [])
    assert _status(offer) == "sent" and _count("agreements") == 0


def test_a_confirmation_after_the_offer_expired_records_nothing(offer: store.OfferView) -> None:
    sent = _send(offer)
    assert sent.expires_at is not None
    late = sent.expires_at + timedelta(minutes=1)
    with action_context(str(context().database.engine.url), now=lambda: late):
        messages, _ = _run(ActionWatchHeldConversation(), _answer("/affirm", "affirm", _shown()))
        assert messages == [_message("utter_staff_offer_expired")]
        assert _status(offer) == "expired" and _count("agreements") == 0


def test_a_confirmation_after_the_balance_changed_records_nothing(offer: store.OfferView) -> None:
    _send(offer)
    url = context().database.engine.url.set(drivername="sqlite")
    engine = sa.create_engine(url, future=True)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE accounts SET overdue_principal = :p WHERE id = :i"),
                {"p": "149000.00", "i": offer.account_id},
            )
    finally:
        engine.dispose()
    messages, _ = _run(ActionWatchHeldConversation(), _answer("/affirm", "affirm", _shown()))
    assert messages == [_message("utter_staff_offer_changed")]
    assert _status(offer) == "changed" and _count("agreements") == 0
