"""Rasa's SQL tracker store, with a per-turn cost that does not grow with the chat.

Rasa rebuilds a conversation's tracker from every event of the current session
on every message, and its policies then walk that whole history. A debtor's
conversation can run to hundreds of turns, so replies would slow down as it
grows. This store keeps Rasa's `events` table (every event is stored, so the
full transcript stays available), and adds one row per conversation holding its
state after the last turn: slot values, the active form and whether the
conversation is paused. On retrieval it loads only the last `window_events`
events of the session and puts that state in front of them as events
(`SlotSet`, `ActiveLoop`, `LoopInterrupted`, `ConversationPaused`), so the
tracker the policies see is bounded. Because the state is carried by events,
everything Rasa derives by replaying events (tracker copies sent to actions,
policy featurisation, reverts of a user utterance) sees it too. Replaying the
window over the final state gives the final state again: each event in the
window sets a value to what it ended up as, or is overridden by a later event.
The state events count as stored and are never written back.

Nothing the debtor typed to verify is written: each turn's events and the state
row go through `bot.domain.redaction` first (mobiles as `138****8000`, the ID
suffix as `****`), and so do the events published to the broker. The actions
get the real values within the turn; the form finds the ones given earlier in
`bot.store.verification_progress`.

Configure it in `endpoints.yml` with the same keys as Rasa's SQL store, plus
`window_events`. Rows stored before the masking are masked in place by
`python -m bot.rasa_ext.tracker_store redact` (`--url`, else `TRACKER_DB_URL`
or the SQLite file `TRACKER_DB`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    Event,
    LoopInterrupted,
    SlotSet,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from rasa.shared.utils.common import all_subclasses
from sqlalchemy.dialects import postgresql, sqlite

from bot.domain.redaction import install_log_redaction, redact_event, redact_slots, secrets_in
from bot.rasa_ext import reply_script
from bot.rasa_ext import speedups as rasa_speedups

logger = logging.getLogger(__name__)

# Every Rasa server loads this module (endpoints.yml, endpoints.scale.yml).
rasa_speedups.apply()
# Every bot message in the script the debtor reads (bot/rasa_ext/reply_script.py).
reply_script.install()
# Logging is set up by then: the Rasa server's log lines are masked from here on.
install_log_redaction()

#: INSERT … ON CONFLICT of the databases the tracker store runs on.
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

#: Attribute set on a tracker: how many of its events are already stored.
STORED_EVENTS = "_stored_event_count"


class ConversationState(SQLTrackerStore.Base):  # type: ignore[misc,valid-type]
    """The state of one conversation after its last stored turn."""

    __tablename__ = "conversation_state"

    sender_id = sa.Column(sa.String(255), primary_key=True)
    slots = sa.Column(sa.Text, nullable=False)
    active_loop = sa.Column(sa.Text)
    paused = sa.Column(sa.Boolean, nullable=False, default=False)
    #: When the state was last written, for operators looking at the table.
    updated_at = sa.Column(sa.Float, nullable=False)


@functools.lru_cache(maxsize=1)
def _event_classes() -> dict[str, type[Event]]:
    return {cls.type_name: cls for cls in all_subclasses(Event)}


def deserialise_events(serialised: list[dict[str, Any]]) -> list[Event]:
    """Like Rasa's `deserialise_events`, without searching every subclass per event."""
    classes = _event_classes()
    events = []
    for parameters in serialised:
        cls = classes.get(parameters.get("event", ""))
        event = cls._from_parameters(parameters) if cls else Event.from_parameters(parameters)
        if event is not None:
            events.append(event)
    return events


class WindowedSQLTrackerStore(SQLTrackerStore):
    """SQL tracker store that loads a bounded window of recent events."""

    def __init__(
        self, domain: Domain | None = None, window_events: int = 60, **kwargs: Any
    ) -> None:
        super().__init__(domain=domain, **kwargs)
        self.window_events = int(window_events)
        if self.window_events < 10:
            raise ValueError("window_events must be at least 10")

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
            state = None
            if not fetch_events_from_all_sessions:
                state = session.get(ConversationState, sender_id)
            if state is None:
                rows = query.all()
            else:
                newest_first = query.order_by(None).order_by(self.SQLEvent.id.desc())
                rows = list(reversed(newest_first.limit(self.window_events).all()))
            if not rows or not self.domain:
                return None
            events = deserialise_events([json.loads(row.data) for row in rows])
            if state is not None and len(rows) == self.window_events:
                events = _state_events(self.domain, state, events[0].timestamp) + events
        tracker = DialogueStateTracker.from_events(sender_id, events, self.domain.slots)
        setattr(tracker, STORED_EVENTS, len(tracker.events))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the events added since retrieval and record the final state.

        With an event broker (the scale profile), exactly the appended events
        are published, in order, after they are committed. Rasa's own
        `stream_events` would load the conversation a second time to find them.
        """
        with self.session_scope() as session:
            if hasattr(tracker, STORED_EVENTS):
                new_events = list(tracker.events)[getattr(tracker, STORED_EVENTS) :]
            else:
                # Built elsewhere (e.g. the HTTP API): compare with what is stored.
                new_events = list(self._additional_events(session, tracker))
            turn = [event.as_dict() for event in new_events]
            secrets = secrets_in(turn)
            stored = [redact_event(data, secrets) for data in turn]
            for event, data in zip(new_events, stored, strict=True):
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=data.get("parse_data", {})
                        .get("intent", {})
                        .get(INTENT_NAME_KEY),
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            loop = tracker.active_loop
            values = {
                "slots": json.dumps(redact_slots(tracker.current_slot_values(), secrets)),
                "active_loop": json.dumps(dataclasses.asdict(loop)) if loop else None,
                "paused": tracker.is_paused(),
                "updated_at": time.time(),
            }
            # An upsert: the row is written whole even if another server created
            # it a moment ago (one conversation is handled by one server at a
            # time, but a lock can expire), so no save fails on the primary key.
            insert = _INSERTS[session.get_bind().dialect.name](ConversationState)
            session.execute(
                insert.values(sender_id=tracker.sender_id, **values).on_conflict_do_update(
                    index_elements=[ConversationState.sender_id], set_=values
                )
            )
            session.commit()
        setattr(tracker, STORED_EVENTS, len(tracker.events))
        if self.event_broker is not None:
            await self._publish_in_order(stored, tracker.sender_id)

    def redact_stored(self) -> int:
        """Mask the verification secrets in rows stored before this store masked them.

        Each conversation is gone through turn by turn (a turn starts at a user
        message), as `save` would have masked it. Idempotent; returns how many
        rows changed.
        """
        changed = 0
        with self.session_scope() as session:
            senders = [sender for (sender,) in session.query(self.SQLEvent.sender_id).distinct()]
        for sender in senders:
            with self.session_scope() as session:
                rows = (
                    session.query(self.SQLEvent)
                    .filter(self.SQLEvent.sender_id == sender)
                    .order_by(self.SQLEvent.id)
                    .all()
                )
                for turn in _turns(rows):
                    stored = [json.loads(row.data) for row in turn]
                    secrets = secrets_in(stored)
                    for row, data in zip(turn, stored, strict=True):
                        redacted = redact_event(data, secrets)
                        if redacted != data:
                            row.data = json.dumps(redacted)
                            changed += 1
                state = session.get(ConversationState, sender)
                if state is not None:
                    slots = json.loads(state.slots)
                    if redact_slots(slots) != slots:
                        state.slots = json.dumps(redact_slots(slots))
                        changed += 1
                session.commit()
        return changed

    async def _publish_in_order(self, events: list[dict[str, Any]], sender_id: str) -> None:
        """Publish the events before the conversation's lock is given back.

        Rasa's RabbitMQ broker publishes each event from a task of its own, so
        the next turn, handled by another replica, could publish before this
        one has: downstream would see a conversation out of order. Its
        coroutine (`_publish`) is awaited here instead, one event after the
        other; another broker gets `publish`.
        """
        assert self.event_broker is not None
        publish_now = getattr(self.event_broker, "_publish", None)
        for event in events:
            body = {"sender_id": sender_id, **event}
            if publish_now is not None:
                await publish_now(body)
            else:
                self.event_broker.publish(body)


def _turns(rows: list[Any]) -> list[list[Any]]:
    """Stored event rows cut into turns, each opening with a user message."""
    turns: list[list[Any]] = [[]]
    for row in rows:
        if row.type_name == "user" and turns[-1]:
            turns.append([])
        turns[-1].append(row)
    return [turn for turn in turns if turn]


def _state_events(domain: Domain, state: ConversationState, timestamp: float) -> list[Event]:
    """Events that recreate `state`: slots off their initial value, loop, pause.

    They open with a visible `action_listen`, as a full conversation opens with
    `action_session_start`: Rasa's ML featurisation skips turns that only rules
    drive (a form's questions), and a window of nothing else would leave the
    policies without a single state (an IndexError in the memoization policy,
    the turn never stored, the form's question asked again and again).
    """
    events: list[Event] = [ActionExecuted(ACTION_LISTEN_NAME, timestamp=timestamp)]
    for name, value in json.loads(state.slots).items():
        slot = next((s for s in domain.slots if s.name == name), None)
        if slot is not None and value != slot.initial_value:
            events.append(SlotSet(name, value, timestamp=timestamp))
    if state.active_loop:
        loop = json.loads(state.active_loop)
        if loop.get("name"):
            events.append(ActiveLoop(loop["name"], timestamp=timestamp))
            if loop.get("is_interrupted"):
                events.append(LoopInterrupted(True, timestamp=timestamp))
    if state.paused:
        events.append(ConversationPaused(timestamp=timestamp))
    return events


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.rasa_ext.tracker_store redact [--url URL]`: mask what older rows hold."""
    parser = argparse.ArgumentParser(prog="python -m bot.rasa_ext.tracker_store")
    parser.add_argument("command", choices=["redact"])
    parser.add_argument(
        "--url", help="the tracker database (default: $TRACKER_DB_URL, else $TRACKER_DB)"
    )
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("TRACKER_DB_URL", "").strip()
    if url:
        parsed = sa.engine.make_url(url)
        config: dict[str, Any] = dict(
            dialect=parsed.get_backend_name(),
            host=parsed.host,
            port=parsed.port,
            db=parsed.database,
            username=parsed.username,
            password=parsed.password,
            query=dict(parsed.query) or None,
        )
    else:
        config = dict(dialect="sqlite", db=os.environ.get("TRACKER_DB") or "var/tracker.db")
    store = WindowedSQLTrackerStore(**config)
    try:
        print(f"{store.redact_stored()} rows masked")
    finally:
        store.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
