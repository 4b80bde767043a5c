"""Each signed WeChat request is accepted once: the guard against replayed requests.

WeChat's `signature` is a digest of the token, `timestamp` and `nonce` only, not
of the body: in plain mode whoever holds one signed query string could post any
XML with it while its timestamp is within `max_clock_skew`. So the first `POST`
with a signature claims it in the shared store (`SET key NX` with an expiry,
key `wechat:<app id>:nonce:<signature>`) and binds it to the message it
carried (the message's de-duplication key). The signature stands for the
token, timestamp and nonce together, so a query that rearranges the same
signed text and still passes the check claims the same key.

A later request with that signature:

- carrying another message is forged (WeChat never reuses a nonce for another
  message): `Admission.REPLAY`, answered 403;
- carrying the same message is `Admission.REPEAT`: either the exact request
  replayed, or WeChat delivering the message again under the same nonce.
  WeChat's retries are new requests, signed again with their own timestamp
  and nonce, and are de-duplicated by `MsgId` (`wechat_endpoint`); should one
  ever come with the nonce of the first, it is answered `success` like any
  repeat: no turn, and no passive reply that would hand the answer to whoever
  replayed it.

A claim lasts until its timestamp leaves the window, plus `NONCE_MARGIN` for the
clocks of the replicas to differ.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping

from bot.rasa_ext.channels.wechat_store import MemoryStore, SharedStore

#: How far apart the clocks of two replicas may be (seconds) before a replay gets through.
NONCE_MARGIN = 60.0


class Admission(enum.Enum):
    """What the guard says about a signed request."""

    FIRST = "first"
    REPEAT = "repeat"
    REPLAY = "replay"


def nonce_key(app_id: str, signature: str) -> str:
    """The store key that claims one signature of the account `app_id`."""
    return f"wechat:{app_id}:nonce:{signature}"


def nonce_ttl(stamp: int, now: float, window: float, margin: float = NONCE_MARGIN) -> float:
    """How long a claim must last: until `stamp` is out of the window, and `margin` more."""
    return max(1.0, float(math.ceil(stamp + window - now + margin)))


class NonceGuard:
    """Claims the signature of each request in the store shared by all replicas.

    `admit` raises `SharedStoreUnavailable` when the store has no Redis and no
    fallback (scale profile); the caller then refuses the request.
    """

    def __init__(
        self,
        store: SharedStore | MemoryStore,
        app_id: str,
        window: float,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.app_id = app_id
        self.window = window
        self.clock = clock

    async def admit(self, args: Mapping[str, str], identity: str) -> Admission:
        """Whether a request (already checked: signature, timestamp) carrying `identity` is new.

        `identity` names the message the request carries (its de-duplication key).
        """
        key = nonce_key(self.app_id, args["signature"])
        ttl = nonce_ttl(int(args["timestamp"]), self.clock(), self.window)
        if await self.store.set(key, identity, ttl, only_new=True):
            return Admission.FIRST
        claimed = await self.store.get(key)
        return Admission.REPEAT if claimed == identity else Admission.REPLAY
