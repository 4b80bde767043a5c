"""The scale profile refuses to start without the settings every replica shares."""

from __future__ import annotations

import pytest

from bot.channels.socketio import session_ids
from bot.console.__main__ import BAD_INPUT
from bot.console.__main__ import main as console_main
from bot.profile import MissingSharedSetting, require_shared, scale_profile


def test_the_default_profile_is_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    monkeypatch.delenv("WEBCHAT_SESSION_KEY", raising=False)
    assert not scale_profile()
    assert require_shared("WEBCHAT_SESSION_KEY") == ""


def test_the_scale_profile_requires_shared_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "  ")
    assert scale_profile()
    with pytest.raises(MissingSharedSetting, match="CONSOLE_SECRET_KEY"):
        require_shared("CONSOLE_SECRET_KEY")
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "k" * 32)
    assert require_shared("CONSOLE_SECRET_KEY") == "k" * 32


def test_web_chat_replicas_need_one_session_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random key per replica would make every replica reject the others' sessions."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.delenv("WEBCHAT_SESSION_KEY", raising=False)
    session_ids.cache_clear()
    try:
        with pytest.raises(MissingSharedSetting, match="WEBCHAT_SESSION_KEY"):
            session_ids()
        monkeypatch.setenv("WEBCHAT_SESSION_KEY", "s" * 32)
        session_ids.cache_clear()
        issued = session_ids().issue()
        assert session_ids().valid(issued)
    finally:
        session_ids.cache_clear()


def test_a_console_replica_will_not_start_with_a_key_of_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sessions signed by one console must hold on the others."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.delenv("CONSOLE_SECRET_KEY", raising=False)
    assert console_main(["serve", "--port", "1"]) == BAD_INPUT
    assert "CONSOLE_SECRET_KEY" in capsys.readouterr().err
