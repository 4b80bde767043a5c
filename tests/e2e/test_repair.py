"""Conversations that go off the forms' path and come back, against the running stack.

Each file of `tests/conversations/repair/` is one class of failure real debtors
met: leaving in the middle, asking for the plans early, not knowing a figure,
being asked twice, a relative writing for the debtor, a question whether
something is possible before anything was checked.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.store.engine import sync_url
from tests.support.conversations import CONVERSATIONS_DIR, play
from tests.support.rasa_api import RestClient

pytestmark = pytest.mark.e2e

REPAIRS = sorted((CONVERSATIONS_DIR / "repair").glob("*.yml"))


def verifications(database_url: str, conversation_id: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(sync_url(database_url), future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT * FROM verification_attempts WHERE conversation_id = :c"),
                {"c": conversation_id},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.dialogue
@pytest.mark.parametrize("path", REPAIRS, ids=lambda p: p.stem)
async def test_repair(client: RestClient, path) -> None:
    await play(client, path)


async def test_a_relative_is_never_verified_as_the_debtor(
    client: RestClient, database_url: str
) -> None:
    """Not even an attempt is made with the details a relative types for the debtor."""
    await play(client, CONVERSATIONS_DIR / "repair" / "third_party.yml")
    assert verifications(database_url, client.sender) == []
