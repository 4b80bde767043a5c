"""The scale profile refuses to start without the settings every replica shares."""

from __future__ import annotations

import pytest
from socketio import AsyncRedisManager

from bot.console.__main__ import BAD_INPUT
from bot.console.__main__ import main as console_main
from bot.profile import (
    MissingSharedSetting,
    UnsafeForScale,
    refuse_in_scale,
    require_shared,
    scale_profile,
)
from bot.rasa_ext.channels.socketio import SignedSessionSocketIO, session_ids
from bot.rasa_ext.channels.wechat import WeChatInput
from tests.support.wechat_fake import AES_KEY


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


def test_web_chat_replicas_share_their_sockets_through_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the Redis manager a staff reply would reach only sockets of the
    replica that sends it; the scale profile will not start without it."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.setenv("WEBCHAT_SESSION_KEY", "s" * 32)
    monkeypatch.delenv("WEBCHAT_REDIS_URL", raising=False)
    session_ids.cache_clear()

    async def handler(message: object) -> None:
        return None

    try:
        channel = SignedSessionSocketIO.from_credentials(None)
        with pytest.raises(MissingSharedSetting, match="WEBCHAT_REDIS_URL"):
            channel.blueprint(handler)
        monkeypatch.setenv("WEBCHAT_REDIS_URL", "redis://127.0.0.1:6379/0")
        channel = SignedSessionSocketIO.from_credentials(None)
        channel.blueprint(handler)
        assert isinstance(channel.sio.manager, AsyncRedisManager)
    finally:
        session_ids.cache_clear()


def _start_wechat_as_rasa_does() -> list[object]:
    """What `rasa run` does first with `credentials.yml`: create the input channel."""
    from rasa.core.run import create_http_input_channels

    return list(
        create_http_input_channels("bot.rasa_ext.channels.wechat.WeChatInput", "credentials.yml")
    )


def test_the_scale_profile_will_not_start_wechat_in_plain_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In plain mode a leaked signed query string could carry any message."""
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.setenv("WECHAT_TOKEN", "token")
    monkeypatch.setenv("WECHAT_APP_ID", "wx0000000000000001")
    monkeypatch.delenv("WECHAT_AES_KEY", raising=False)
    with pytest.raises(UnsafeForScale, match="BOT_PROFILE=scale.*WECHAT_AES_KEY"):
        _start_wechat_as_rasa_does()
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    [channel] = _start_wechat_as_rasa_does()
    assert isinstance(channel, WeChatInput) and channel.config.safe_mode


def test_the_default_profile_allows_wechat_in_plain_mode_and_scale_a_disabled_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    monkeypatch.setenv("WECHAT_TOKEN", "token")
    monkeypatch.delenv("WECHAT_AES_KEY", raising=False)
    [channel] = _start_wechat_as_rasa_does()
    assert isinstance(channel, WeChatInput) and not channel.config.safe_mode
    # No token: the channel answers 503 to everything, in any profile.
    monkeypatch.setenv("BOT_PROFILE", "scale")
    monkeypatch.delenv("WECHAT_TOKEN", raising=False)
    [channel] = _start_wechat_as_rasa_does()
    assert isinstance(channel, WeChatInput) and channel.config.problem() is not None


def test_refuse_in_scale_only_refuses_in_the_scale_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    refuse_in_scale("not for clusters")
    monkeypatch.setenv("BOT_PROFILE", "scale")
    refuse_in_scale(None)
    with pytest.raises(UnsafeForScale, match="not for clusters"):
        refuse_in_scale("not for clusters")
