"""The console's session cookie is Secure by default; hostile CSRF tokens are refused."""

from __future__ import annotations

import pytest

from bot.console.__main__ import BAD_INPUT
from bot.console.__main__ import main as console_main
from bot.console.sessions import COOKIE_NAME, SessionStore, secure_cookies_setting


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


def _set_cookie(store: SessionStore) -> str:
    from aiohttp import web

    response = web.Response()
    store.save(response, SessionStore.new(1))
    return response.cookies[COOKIE_NAME].OutputString()


def test_the_cookie_is_secure_unless_switched_off() -> None:
    assert "Secure" in _set_cookie(SessionStore(b"k" * 32))
    assert "Secure" not in _set_cookie(SessionStore(b"k" * 32, secure=False))


@pytest.mark.parametrize(
    ("value", "secure"),
    [(None, True), ("", True), ("1", True), ("true", True), ("0", False), (" off ", False)],
)
def test_the_setting_is_on_unless_explicitly_off(value: str | None, secure: bool) -> None:
    assert secure_cookies_setting(value) is secure


def test_a_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="CONSOLE_SECURE_COOKIES"):
        secure_cookies_setting("maybe")
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("CONSOLE_SECURE_COOKIES", "maybe")
    assert console_main(["serve", "--port", "1"]) == BAD_INPUT
    assert "CONSOLE_SECURE_COOKIES" in capsys.readouterr().err
