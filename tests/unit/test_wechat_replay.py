"""The pure parts of the WeChat replay guard: keys, lifetimes, timestamps, verdicts."""

from __future__ import annotations

import pytest
from wechatpy.utils import WeChatSigner

from bot.rasa_ext.channels.wechat_config import WeChatConfig
from bot.rasa_ext.channels.wechat_envelope import check_request, parse_timestamp
from bot.rasa_ext.channels.wechat_replay import (
    NONCE_MARGIN,
    Admission,
    NonceGuard,
    nonce_key,
    nonce_ttl,
)
from bot.rasa_ext.channels.wechat_store import MemoryStore
from tests.support.wechat_fake import AES_KEY

NOW = 1_800_000_000.0


def _signed(token: str, stamp: int, nonce: str = "12345") -> dict[str, str]:
    signer = WeChatSigner()
    signer.add_data(token, str(stamp), nonce)
    return {"signature": str(signer.signature), "timestamp": str(stamp), "nonce": nonce}


def test_timestamps_are_plain_digits() -> None:
    assert parse_timestamp("1800000000") == 1_800_000_000
    for text in ("", " 1800000000", "+1800000000", "1_800_000_000", "١٨٠٠", "18e8", "-1"):
        assert parse_timestamp(text) is None, text


@pytest.mark.parametrize("sign", [-1, 1], ids=["old", "future"])
def test_a_timestamp_out_of_the_window_is_refused_either_way(sign: int) -> None:
    config = WeChatConfig(token="t")
    refused = check_request(config, _signed("t", int(NOW) + sign * 301), lambda: NOW)
    assert refused is not None and refused.status == 403
    assert "timestamp" in refused.body
    assert check_request(config, _signed("t", int(NOW) + sign * 300), lambda: NOW) is None


def test_a_claim_lasts_while_its_timestamp_is_in_the_window() -> None:
    stamp = int(NOW)
    assert nonce_ttl(stamp, NOW, 300) == 300 + NONCE_MARGIN
    assert nonce_ttl(stamp - 300, NOW, 300) == NONCE_MARGIN
    assert nonce_ttl(stamp + 300, NOW, 300) == 600 + NONCE_MARGIN
    assert nonce_ttl(stamp - 10_000, NOW, 300) == 1.0
    assert nonce_key("wx1", "abc") != nonce_key("wx2", "abc")


async def test_a_signature_is_admitted_once() -> None:
    guard = NonceGuard(MemoryStore(), "wx1", 300, lambda: NOW)
    args = {"signature": "s1", "timestamp": str(int(NOW)), "nonce": "1"}
    assert await guard.admit(args, "wechat:wx1:msg:1") is Admission.FIRST
    assert await guard.admit(args, "wechat:wx1:msg:1") is Admission.REPEAT
    assert await guard.admit(args, "wechat:wx1:msg:2") is Admission.REPLAY
    fresh = {**args, "signature": "s2", "nonce": "2"}
    assert await guard.admit(fresh, "wechat:wx1:msg:2") is Admission.FIRST


def test_the_scale_profile_problem_is_plain_mode() -> None:
    assert "WECHAT_AES_KEY" in str(WeChatConfig(token="t").scale_problem())
    assert WeChatConfig(token="t", app_id="wx1", aes_key=AES_KEY).scale_problem() is None
    # Without a token the channel is off (503), and nothing can be replayed.
    assert WeChatConfig().scale_problem() is None
