"""After a verification, no store and no queue holds what the debtor typed to verify.

A conversation is stored turn by turn as Rasa stores it (retrieve, add the
turn's events, save) in the windowed SQL tracker store on SQLite and on
PostgreSQL (a schema of its own), and published through the redacting
RabbitMQ broker to a real RabbitMQ. Then every table of the tracker database
and every message of the queue is searched, as text, for the mobile numbers
and ID suffixes typed: each is there only masked. The form still finds the
details given (masked) when the conversation is read back.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import psycopg2
import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)

from bot.rasa_ext.event_broker import RedactingPikaEventBroker
from bot.rasa_ext.tracker_store import ConversationState, WindowedSQLTrackerStore

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [inform, ask_account_status]
entities: [person_name, id_last4, phone, amount]
slots:
  debtor_name: {type: text, mappings: [{type: custom}]}
  id_last4: {type: text, mappings: [{type: custom}]}
  phone: {type: text, mappings: [{type: custom}]}
  monthly_income: {type: text, mappings: [{type: custom}]}
forms:
  verification_form:
    required_slots: [debtor_name, id_last4, phone]
responses:
  utter_ask_id_last4: [{text: "请提供身份证号的后四位"}]
"""
)
#: The smallest window: the long conversation is read back through the state row.
WINDOW = 10
T0 = 1_790_000_000.0
_PG = sa.engine.make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
RABBITMQ = sa.engine.make_url(
    os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
)

NAME, MOBILE, SUFFIX = "张伟", "15912340987", "987X"
WRONG_MOBILE, WRONG_SUFFIX = "15912340988", "4826"
TYPED = (MOBILE, SUFFIX, WRONG_MOBILE, WRONG_SUFFIX, "159 1234 0987")


def found_secrets(text: str) -> list[str]:
    """Each value typed to verify that `text` holds as typed (digits not within a longer number)."""
    return [
        secret
        for secret in TYPED
        if re.search(rf"(?<![0-9.]){re.escape(secret)}(?![0-9])", text, re.IGNORECASE)
    ]


@pytest.fixture
def postgres_schema() -> Iterator[dict[str, Any]]:
    """Tracker store settings for a PostgreSQL schema of this test's own."""
    schema = f"test_tracker_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(_PG.set(drivername="postgresql").render_as_string(False))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        yield dict(
            dialect="postgresql",
            host=_PG.host,
            port=_PG.port or 5432,
            db=_PG.database,
            username=_PG.username,
            password=_PG.password,
            query={"options": f"-csearch_path={schema}"},
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WindowedSQLTrackerStore]:
    if request.param == "sqlite":
        config: dict[str, Any] = dict(dialect="sqlite", db=str(tmp_path / "tracker.db"))
    else:
        config = request.getfixturevalue("postgres_schema")
    store = WindowedSQLTrackerStore(domain=DOMAIN, window_events=WINDOW, **config)
    yield store
    store.engine.dispose()


def database_text(store: WindowedSQLTrackerStore) -> str:
    """Every value of every table of the tracker database, as text."""
    metadata = sa.MetaData()
    metadata.reflect(bind=store.engine)
    parts = []
    with store.engine.connect() as connection:
        for table in metadata.sorted_tables:
            parts += [str(value) for row in connection.execute(sa.select(table)) for value in row]
    return "\n".join(parts)


def user(index: int, text: str, *entities: tuple[str, str, str]) -> UserUttered:
    """The debtor's message; each entity is (name, value, text span)."""
    found = []
    for name, value, span in entities:
        start = text.index(span)
        found.append({"entity": name, "value": value, "start": start, "end": start + len(span)})
    intent = {"name": "inform", "confidence": 0.9}
    return UserUttered(text, intent, found, input_channel="rest", timestamp=T0 + index)


def form_turn(index: int, message: UserUttered, *slots: tuple[str, Any]) -> list[Event]:
    """A turn of the verification form: Rasa's extraction, the form's validation, its question."""
    at = T0 + index
    return [
        message,
        *(SlotSet(name, value, timestamp=at) for name, value in slots),
        ActionExecuted("verification_form", timestamp=at),
        *(SlotSet(name, value, timestamp=at) for name, value in slots),
        BotUttered("请提供身份证号的后四位", timestamp=at),
        ActionExecuted("action_listen", timestamp=at),
    ]


def verification() -> list[list[Event]]:
    """A failed attempt in one message, then step by step with a correction, then an income."""
    start = [
        ActionExecuted("action_session_start", timestamp=T0),
        SessionStarted(timestamp=T0),
        ActionExecuted("action_listen", timestamp=T0),
    ]
    wrong = f"我叫{NAME}，身份证后四位{WRONG_SUFFIX}，手机{MOBILE}"
    given = (("debtor_name", NAME), ("id_last4", WRONG_SUFFIX), ("phone", MOBILE))
    failed = [
        user(
            1,
            wrong,
            ("person_name", NAME, NAME),
            ("id_last4", WRONG_SUFFIX, WRONG_SUFFIX),
            ("phone", MOBILE, MOBILE),
        ),
        *(SlotSet(name, value, timestamp=T0 + 1) for name, value in given),
        ActionExecuted("action_start_verification", timestamp=T0 + 1),
        ActionExecuted("verification_form", timestamp=T0 + 1),
        ActiveLoop("verification_form", timestamp=T0 + 1),
        *(SlotSet(name, value, timestamp=T0 + 1) for name, value in given),
        ActiveLoop(None, timestamp=T0 + 1),
        ActionExecuted("action_verify_identity", timestamp=T0 + 1),
        *(SlotSet(name, None, timestamp=T0 + 1) for name, _ in given),
        BotUttered("信息未能通过核实，您还可以尝试 2 次。", timestamp=T0 + 1),
        ActionExecuted("verification_form", timestamp=T0 + 1),
        ActiveLoop("verification_form", timestamp=T0 + 1),
        ActionExecuted("action_listen", timestamp=T0 + 1),
    ]
    return [
        start,
        failed,
        form_turn(2, user(2, NAME, ("person_name", NAME, NAME)), ("debtor_name", NAME)),
        # Asked for the ID suffix, the form takes the answer whole (no entity).
        form_turn(3, user(3, SUFFIX.lower()), ("id_last4", SUFFIX)),
        form_turn(
            4,
            user(4, "159 1234 0988", ("phone", WRONG_MOBILE, "159 1234 0988")),
            ("phone", WRONG_MOBILE),
        ),
        form_turn(
            5, user(5, f"不对，手机号是{MOBILE}", ("phone", MOBILE, MOBILE)), ("phone", MOBILE)
        ),
        [
            user(6, "我月收入4000", ("amount", "4000", "4000")),
            SlotSet("monthly_income", "4000", timestamp=T0 + 6),
            ActionExecuted("action_listen", timestamp=T0 + 6),
        ],
    ]


async def play(store: WindowedSQLTrackerStore, sender: str, turns: list[list[Event]]) -> None:
    """Store `turns` as Rasa does: retrieve, add one turn's events, save."""
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    for turn in turns:
        tracker = await store.retrieve(sender) or tracker
        for event in turn:
            tracker.update(event)
        await store.save(tracker)


async def test_the_tracker_database_holds_no_typed_secret(store: WindowedSQLTrackerStore) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    await play(store, sender, verification())

    text = database_text(store)
    assert found_secrets(text) == []
    assert "159****0987" in text and "****" in text

    # Read back (through the state row: the window is shorter than the conversation),
    # the form sees every detail as given, the name and the income as typed.
    tracker = await store.retrieve(sender)
    assert tracker is not None
    assert [tracker.get_slot(s) for s in ("debtor_name", "id_last4", "phone")] == [
        NAME,
        "****",
        "159****0987",
    ]
    assert tracker.get_slot("monthly_income") == "4000"
    assert tracker.latest_message is not None and tracker.latest_message.text == "我月收入4000"


async def test_what_the_debtor_typed_is_stored_masked_as_said(
    store: WindowedSQLTrackerStore,
) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    await play(store, sender, verification())
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT data FROM events WHERE type_name = 'user' ORDER BY id")
        ).scalars()
        said = [json.loads(row)["text"] for row in rows]
    assert said == [
        f"我叫{NAME}，身份证后四位****，手机159****0987",
        NAME,
        "****",
        "159****0988",
        "不对，手机号是159****0987",
        "我月收入4000",
    ]


@pytest.fixture
async def rabbitmq_queue() -> AsyncIterator[tuple[str, str]]:
    """A fanout exchange and a queue of this test's own: (exchange, queue)."""
    names = f"test.redaction.{uuid.uuid4().hex[:12]}", f"test.redaction.q.{uuid.uuid4().hex[:12]}"
    yield names
    connection = await aio_pika.connect(RABBITMQ.render_as_string(False), timeout=10)
    try:
        channel = await connection.channel()
        await channel.queue_delete(names[1])
        await channel.exchange_delete(names[0])
    finally:
        await connection.close()


async def consume(queue_name: str, count: int) -> list[dict[str, Any]]:
    """The messages of the queue, waiting until `count` have arrived (or 10 s)."""
    connection = await aio_pika.connect(RABBITMQ.render_as_string(False), timeout=10)
    bodies: list[dict[str, Any]] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        for _ in range(200):
            message = await queue.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                if len(bodies) >= count:
                    break
                continue
            bodies.append(json.loads(message.body))
    finally:
        await connection.close()
    return bodies


async def test_the_events_queue_gets_masked_events_only(
    tmp_path: Path, rabbitmq_queue: tuple[str, str]
) -> None:
    exchange, queue = rabbitmq_queue
    broker = RedactingPikaEventBroker(
        RABBITMQ.host,
        RABBITMQ.username,
        RABBITMQ.password,
        port=RABBITMQ.port or 5672,
        queues=[queue],
        exchange_name=exchange,
        connection_attempts=1,
    )
    await broker.connect()
    store = WindowedSQLTrackerStore(
        domain=DOMAIN, window_events=WINDOW, dialect="sqlite", db=str(tmp_path / "tracker.db")
    )
    store.event_broker = broker
    sender = f"t-{uuid.uuid4().hex}"
    turns = verification()
    try:
        await play(store, sender, turns)
        # Rasa's own way to publish (an event straight from a channel or the HTTP API).
        raw = user(9, f"手机{MOBILE} 尾号{SUFFIX}", ("id_last4", SUFFIX, SUFFIX))
        broker.publish({"sender_id": sender, **raw.as_dict()})
        expected = sum(len(turn) for turn in turns) + 1
        bodies = await consume(queue, expected)
    finally:
        await broker.close()
        store.engine.dispose()

    assert len(bodies) == expected
    assert {body["sender_id"] for body in bodies} == {sender}
    text = json.dumps(bodies, ensure_ascii=False)
    assert found_secrets(text) == []
    said = [body["text"] for body in bodies if body["event"] == "user"]
    assert said[-2:] == ["我月收入4000", "手机159****0987 尾号****"]
    slots = [(b["name"], b["value"]) for b in bodies if b["event"] == "slot" and b["value"]]
    assert ("id_last4", "****") in slots and ("phone", "159****0987") in slots
    assert ("debtor_name", NAME) in slots and ("monthly_income", "4000") in slots


async def test_rows_stored_before_the_masking_are_masked_in_place(
    store: WindowedSQLTrackerStore,
) -> None:
    sender = f"t-{uuid.uuid4().hex}"
    with store.session_scope() as session:
        for event in [event for turn in verification() for event in turn]:
            data = event.as_dict()
            session.add(
                store.SQLEvent(
                    sender_id=sender,
                    type_name=event.type_name,
                    timestamp=event.timestamp,
                    data=json.dumps(data),
                )
            )
        session.add(
            ConversationState(
                sender_id=sender,
                slots=json.dumps({"debtor_name": NAME, "id_last4": SUFFIX, "phone": MOBILE}),
                paused=False,
                updated_at=T0,
            )
        )
        session.commit()
    assert found_secrets(database_text(store)) != []

    changed = store.redact_stored()

    assert changed > 0
    assert found_secrets(database_text(store)) == []
    assert store.redact_stored() == 0
    tracker = await store.retrieve(sender)
    assert tracker is not None
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)][-2:] == [
        "不对，手机号是159****0987",
        "我月收入4000",
    ]
