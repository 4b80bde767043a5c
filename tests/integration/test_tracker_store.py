"""The windowed SQL tracker store restores the state of a full replay (SQLite, PostgreSQL)."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_ext.tracker_store import STORED_EVENTS, WindowedSQLTrackerStore

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, inform]
slots:
  verified:
    type: bool
    initial_value: false
    mappings: [{type: custom}]
  monthly_income:
    type: float
    mappings: [{type: custom}]
  debtor_name:
    type: text
    mappings: [{type: custom}]
forms:
  circumstances_form:
    required_slots: [monthly_income]
responses:
  utter_greet: [{text: "您好"}]
"""
)
WINDOW = 20
#: Events carry real timestamps: Rasa finds the latest session by its start time.
T0 = 1_790_000_000.0
_PG = sa.engine.make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
POSTGRES = dict(
    dialect="postgresql",
    host=_PG.host,
    port=_PG.port or 5432,
    db=_PG.database,
    username=_PG.username,
    password=_PG.password,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WindowedSQLTrackerStore]:
    if request.param == "sqlite":
        config = dict(dialect="sqlite", db=str(tmp_path / "tracker.db"))
    else:
        config = POSTGRES
    store = WindowedSQLTrackerStore(domain=DOMAIN, window_events=WINDOW, **config)
    yield store
    store.engine.dispose()


def turn(text: str, index: int) -> list:
    return [
        UserUttered(text, {"name": "inform", "confidence": 1.0}, timestamp=T0 + index),
        ActionExecuted("utter_greet", timestamp=T0 + index),
        BotUttered("您好", timestamp=T0 + index),
        ActionExecuted("action_listen", timestamp=T0 + index),
    ]


def history() -> list:
    events = [ActionExecuted("action_session_start", timestamp=T0), SessionStarted(timestamp=T0)]
    events += [
        SlotSet("verified", True, timestamp=T0),
        SlotSet("debtor_name", "张伟", timestamp=T0),
    ]
    events.append(ActionExecuted("action_listen", timestamp=T0))
    for index in range(1, 40):
        events += turn(f"第{index}句", index)
    events += [
        ActiveLoop("circumstances_form", timestamp=T0 + 40),
        SlotSet("monthly_income", 4000.0, timestamp=T0 + 40),
        SlotSet("debtor_name", None, timestamp=T0 + 40),
    ]
    return events


async def save_in_turns(store: WindowedSQLTrackerStore, sender: str, events: list) -> None:
    """Store `events` as Rasa does: retrieve, add one turn's events, save."""
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    for start in range(0, len(events), 4):
        tracker = await store.retrieve(sender) or tracker
        for event in events[start : start + 4]:
            tracker.update(event)
        await store.save(tracker)


async def test_windowed_tracker_has_the_state_of_a_full_replay(
    store: WindowedSQLTrackerStore,
) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    events = history()
    await save_in_turns(store, sender, events)
    expected = DialogueStateTracker.from_events(sender, events, DOMAIN.slots)

    tracker = await store.retrieve(sender)

    assert tracker is not None
    assert list(tracker.events)[-WINDOW:] == events[-WINDOW:]
    assert len(tracker.events) < WINDOW + 5 < len(events)
    assert tracker.current_slot_values() == expected.current_slot_values()
    assert tracker.current_slot_values()["verified"] is True
    assert tracker.active_loop_name == "circumstances_form"
    assert tracker.latest_message.text == "第39句"
    assert not tracker.is_paused()


async def test_every_event_is_stored_once(store: WindowedSQLTrackerStore) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    events = history()
    await save_in_turns(store, sender, events)

    with store.engine.connect() as connection:
        count = connection.execute(
            sa.text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": sender}
        ).scalar()
    full = await store.retrieve_full_tracker(sender)

    assert count == len(events)
    assert full is not None and len(full.events) == len(events)


async def test_short_conversation_is_replayed_whole(store: WindowedSQLTrackerStore) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    events = [SlotSet("verified", True), *turn("你好", 1)]
    await save_in_turns(store, sender, events)

    tracker = await store.retrieve(sender)

    assert tracker is not None
    assert list(tracker.events) == events


async def test_paused_state_survives_the_window(store: WindowedSQLTrackerStore) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    events = [ConversationPaused(timestamp=T0)] + [e for i in range(1, 10) for e in turn("在吗", i)]
    await save_in_turns(store, sender, events)

    tracker = await store.retrieve(sender)

    assert tracker is not None and tracker.is_paused()


async def test_unknown_conversation_is_none(store: WindowedSQLTrackerStore) -> None:
    assert await store.retrieve(f"t-{uuid.uuid4().hex}") is None


def test_window_must_hold_a_few_turns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_events"):
        WindowedSQLTrackerStore(domain=DOMAIN, window_events=3, db=str(tmp_path / "x.db"))


async def test_copies_and_featurisation_see_the_restored_state(
    store: WindowedSQLTrackerStore,
) -> None:
    """Rasa sends copies to actions and featurises replays: both must see the state."""
    sender = f"t-{uuid.uuid4().hex}"
    await save_in_turns(store, sender, history())

    tracker = await store.retrieve(sender)
    assert tracker is not None
    copy = tracker.copy()
    full = DialogueStateTracker.from_events(sender, history(), DOMAIN.slots)

    assert copy.current_slot_values() == full.current_slot_values()
    assert copy.current_slot_values()["verified"] is True
    assert copy.active_loop_name == "circumstances_form"
    assert tracker.past_states(DOMAIN)[-1] == full.past_states(DOMAIN)[-1]


async def test_a_revert_inside_the_window_keeps_the_earlier_state(
    store: WindowedSQLTrackerStore,
) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    await save_in_turns(store, sender, history())
    tracker = await store.retrieve(sender)
    assert tracker is not None

    tracker.update(UserUtteranceReverted())
    await store.save(tracker)
    again = await store.retrieve(sender)

    assert tracker.current_slot_values()["verified"] is True
    assert again is not None and again.current_slot_values()["verified"] is True


async def test_a_tracker_built_elsewhere_is_not_stored_twice(
    store: WindowedSQLTrackerStore,
) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    events = [SlotSet("verified", True), *turn("你好", 1)]
    await save_in_turns(store, sender, events)

    rebuilt = DialogueStateTracker.from_events(sender, events + turn("在吗", 2), DOMAIN.slots)
    await store.save(rebuilt)
    full = await store.retrieve_full_tracker(sender)

    assert full is not None and len(full.events) == len(events) + 4


async def test_two_servers_creating_one_conversation_both_save(
    store: WindowedSQLTrackerStore,
) -> None:
    """Two servers that each started the same new conversation: the second save
    writes over the saved state the first created (an upsert on both databases)
    and keeps both turns."""
    sender = f"t-{uuid.uuid4().hex}"
    other = copy.copy(store)  # another server on the same database
    first = DialogueStateTracker.from_events(sender, turn("你好", 1), DOMAIN.slots)
    second = DialogueStateTracker.from_events(
        sender, [SlotSet("verified", True, timestamp=T0), *turn("在吗", 2)], DOMAIN.slots
    )
    setattr(first, STORED_EVENTS, 0)
    setattr(second, STORED_EVENTS, 0)
    await store.save(first)
    await other.save(second)

    full = await store.retrieve_full_tracker(sender)
    assert full is not None
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["你好", "在吗"]
    saved = await store.retrieve(sender)
    assert saved is not None and saved.current_slot_values()["verified"] is True


class RecordingBroker(EventBroker):
    """Keeps what it is given to publish (the cluster tests use RabbitMQ itself)."""

    def __init__(self) -> None:
        self.published: list[dict] = []

    def publish(self, event: dict) -> None:
        self.published.append(event)

    def is_ready(self) -> bool:
        return True


async def test_an_event_broker_gets_each_stored_event_once(store: WindowedSQLTrackerStore) -> None:
    broker = RecordingBroker()
    store.event_broker = broker
    sender = f"t-{uuid.uuid4().hex}"
    events = history()
    await save_in_turns(store, sender, events)

    assert [(e["sender_id"], e["event"]) for e in broker.published] == [
        (sender, event.type_name) for event in events
    ]
    assert [e.get("text") for e in broker.published if e["event"] == "user"] == [
        f"第{index}句" for index in range(1, 40)
    ]


def form_turn(text: str, index: int) -> list:
    """One answer inside a form that only rules drive: Rasa hides these turns."""
    return [
        UserUttered(text, {"name": "inform", "confidence": 1.0}, timestamp=T0 + index),
        ActionExecuted("circumstances_form", timestamp=T0 + index, hide_rule_turn=True),
        SlotSet("monthly_income", 4000.0 + index, timestamp=T0 + index),
        ActionExecuted("action_listen", timestamp=T0 + index, hide_rule_turn=True),
    ]


async def test_a_window_of_hidden_form_turns_still_featurises(
    store: WindowedSQLTrackerStore,
) -> None:
    """A window holding only rule-driven form turns still gives the ML policies a history.

    Without a visible turn in the window, Rasa's featuriser found no state at all
    and the memoization policy raised an IndexError after the form's question:
    the turn was never stored and the same question came back on every answer.
    """
    sender = f"t-{uuid.uuid4().hex}"
    events = [ActionExecuted("action_session_start", timestamp=T0), SessionStarted(timestamp=T0)]
    events += [ActionExecuted("action_listen", timestamp=T0), *turn("我想协商", 1)]
    events += [ActiveLoop("circumstances_form", timestamp=T0 + 2)]
    for index in range(3, 3 + WINDOW):
        events += form_turn(f"第{index}句", index)
    await save_in_turns(store, sender, events)
    tracker = await store.retrieve(sender)
    assert tracker is not None
    # The form asks its next question; the policies then predict after it.
    tracker.update(UserUttered("一年", {"name": "inform", "confidence": 1.0}, timestamp=T0 + 99))
    tracker.update(ActionExecuted("circumstances_form", timestamp=T0 + 99, hide_rule_turn=True))
    rule_only = {"rule_only_slots": [], "rule_only_loops": ["circumstances_form"]}
    featurizer = MaxHistoryTrackerFeaturizer(None, max_history=5)

    states = featurizer.prediction_states(
        [tracker], DOMAIN, ignore_rule_only_turns=True, rule_only_data=rule_only
    )

    assert states[0], "the ML policies got no state to predict from"
    full = DialogueStateTracker.from_events(sender, tracker.events, DOMAIN.slots)
    assert tracker.current_slot_values() == full.current_slot_values()
    assert tracker.active_loop_name == "circumstances_form"
