"""Web chat session tokens, and the conversation ids derived from them.

The page holds a **session token**; everything else (Rasa's tracker store, the
audit log, RabbitMQ, the staff console, the logs) sees only the **conversation
id** derived from it, which cannot be turned back into a token.

A token is `v1.<session>.<started>.<issued>.<signature>`:

- `session`: 32 random hex digits, the secret of one conversation;
- `started`: when the conversation's first token was issued (Unix seconds);
- `issued`: when this token was issued;
- `signature`: HMAC-SHA256 of the rest (first 32 hex digits), under a key
  derived from `WEBCHAT_SESSION_KEY`.

A token is accepted for `WEBCHAT_SESSION_TTL` seconds after it was issued
(default 24 hours). While it is, the server gives the page a fresh token for
the same conversation whenever asked (every connection, and the page asks
again half-way through a token's life), until the conversation is
`WEBCHAT_SESSION_MAX_AGE` seconds old (default 7 days): then, as with an
expired or forged token, a new conversation starts.

The conversation id is `webchat:` and 32 hex digits of an HMAC-SHA256 of the
session under another derived key: one-way, and of another form than a token.

Without `WEBCHAT_SESSION_KEY` a random key is made at start-up (with a
warning): pages then start new conversations after every restart of the server.
In the scale profile the key is required (every replica must accept the
others' tokens).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.profile import require_shared

logger = logging.getLogger(__name__)

#: Prefix of web chat conversation ids (never of a token).
CONVERSATION_PREFIX = "webchat:"
DEFAULT_TTL_SECONDS = 24 * 60 * 60
DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 60 * 60
#: A token issued further in the future than this (clock skew between replicas) is refused.
FUTURE_TOLERANCE_SECONDS = 60
MAX_TOKEN_LENGTH = 128

_TOKEN = re.compile(r"v1\.([0-9a-f]{32})\.([0-9]{1,12})\.([0-9]{1,12})\.([0-9a-f]{32})", re.ASCII)


@dataclass(frozen=True)
class WebChatSession:
    """What a valid token says."""

    session: str
    started: int
    issued: int
    #: The Rasa sender id of the conversation.
    conversation_id: str
    #: When this token stops being accepted (Unix seconds).
    expires_at: int


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


class SessionTokens:
    """Issues, checks and renews web chat session tokens."""

    def __init__(
        self,
        key: bytes,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("WEBCHAT_SESSION_KEY must have at least 16 characters")
        if ttl < 60 or max_age < ttl:
            raise ValueError("the token lifetime must be at least 60 s and at most the maximum age")
        self._signing_key = _derive(key, b"webchat session token v1")
        self._id_key = _derive(key, b"webchat conversation id v1")
        self.ttl = ttl
        self.max_age = max_age
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _signature(self, body: str) -> str:
        return hmac.new(self._signing_key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def conversation_id(self, session: str) -> str:
        """The conversation id of `session` (one-way)."""
        digest = hmac.new(self._id_key, session.encode(), hashlib.sha256).hexdigest()[:32]
        return CONVERSATION_PREFIX + digest

    def _token(self, session: str, started: int, issued: int) -> str:
        body = f"v1.{session}.{started}.{issued}"
        return f"{body}.{self._signature(body)}"

    def issue(self) -> str:
        """A token of a new conversation."""
        now = self._now()
        return self._token(secrets.token_hex(16), now, now)

    def read(self, token: object) -> WebChatSession | None:
        """The session of a validly signed, unexpired token; None for anything else."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        session, started_text, issued_text, signature = match.groups()
        body = token[: -len(signature) - 1]
        # ASCII only (the pattern): `compare_digest` raises TypeError on other strings.
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        started, issued, now = int(started_text), int(issued_text), self._now()
        if started > issued or issued > now + FUTURE_TOLERANCE_SECONDS:
            return None
        if now >= issued + self.ttl:
            return None
        return WebChatSession(
            session, started, issued, self.conversation_id(session), issued + self.ttl
        )

    def valid(self, token: object) -> bool:
        """Whether `token` is validly signed and unexpired."""
        return self.read(token) is not None

    def renew(self, session: WebChatSession) -> str | None:
        """A fresh token for the same conversation, or None once it is too old."""
        now = self._now()
        if now >= session.started + self.max_age:
            return None
        return self._token(session.session, session.started, max(now, session.issued))


def _seconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds, not {value!r}") from None


@functools.lru_cache(maxsize=1)
def session_ids() -> SessionTokens:
    """This process's issuer of web chat session tokens, from the environment."""
    return SessionTokens(
        _session_key(),
        ttl=_seconds("WEBCHAT_SESSION_TTL", DEFAULT_TTL_SECONDS),
        max_age=_seconds("WEBCHAT_SESSION_MAX_AGE", DEFAULT_MAX_AGE_SECONDS),
    )


def _session_key() -> bytes:
    key = require_shared("WEBCHAT_SESSION_KEY")
    if key:
        return key.encode()
    logger.warning(
        "WEBCHAT_SESSION_KEY is not set: a random key is used, and web chat pages "
        "start a new conversation after every restart"
    )
    return secrets.token_bytes(32)
