"""The console's CSRF check: hostile tokens are refused, never an error."""

from __future__ import annotations

import pytest

from bot.console.sessions import SessionStore


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "wrong",
        "令牌" * 20,
        "é",
        "\udcff\udcfe",  # what aiohttp makes of a header's undecodable bytes
        "\ud800",
    ],
)
def test_a_wrong_token_does_not_match(token: str | None) -> None:
    session = SessionStore.new(1)
    assert not session.csrf_matches(token)


def test_the_sessions_token_matches() -> None:
    session = SessionStore.new(1)
    assert session.csrf_matches(session.csrf_token)
    assert not session.csrf_matches(session.csrf_token[:-1] + "é")
