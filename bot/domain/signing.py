"""Signed requests between systems: HMAC-SHA256 over the request, a timestamp and a nonce.

Used by the REST channel (`bot.rasa_ext.channels.rest_auth`) and by the
console's payment push (`bot.console.payment_push`). A client named in a
`name:secret[,name:secret…]` setting (a name is 1-32 of `a-z 0-9 _ -`; a
secret at least 32 characters, no comma) sends:

    X-Integrator: <name>
    X-Timestamp:  <Unix time in whole seconds>
    X-Nonce:      <16-64 characters of A-Z a-z 0-9 _ -, new for every request>
    X-Signature:  <hex HMAC-SHA256 under the secret of the canonical string>

where the canonical string is these five lines joined by `\\n`: the timestamp,
the nonce, the method, the path with its query string as sent, and the hex
SHA-256 of the body (of the empty body for a GET).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

WINDOW_SECONDS = 300
MIN_SECRET_LENGTH = 32
INTEGRATOR_HEADER = "X-Integrator"
TIMESTAMP_HEADER = "X-Timestamp"
NONCE_HEADER = "X-Nonce"
SIGNATURE_HEADER = "X-Signature"

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)
TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


class SignatureRefused(ValueError):
    """A request that is not validly signed; the message says what is wrong."""


def parse_clients(value: str, setting: str) -> dict[str, bytes]:
    """`name:secret,…` (the value of `setting`) as a mapping; ValueError naming the problem."""
    clients: dict[str, bytes] = {}
    for entry in value.split(","):
        name, _, secret = entry.strip().partition(":")
        if not NAME.fullmatch(name):
            raise ValueError(f"{setting}: each entry is name:secret, a name 1-32 of a-z 0-9 _ -")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{setting}: the secret of {name!r} must have at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        if name in clients:
            raise ValueError(f"{setting}: {name!r} is named twice")
        clients[name] = secret.encode()
    return clients


def canonical(timestamp: str, nonce: str, method: str, target: str, body: bytes) -> bytes:
    """What is signed: timestamp, nonce, method, path and query, body hash; one a line."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([timestamp, nonce, method.upper(), target, digest]).encode()


def signature(
    secret: bytes, timestamp: str, nonce: str, method: str, target: str, body: bytes
) -> str:
    """The hex HMAC-SHA256 of the canonical string."""
    message = canonical(timestamp, nonce, method, target, body)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(
    name: str,
    secret: str | bytes,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request to `url` (a full URL, or a path and query)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    key = secret.encode() if isinstance(secret, str) else secret
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        INTEGRATOR_HEADER: name,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key, timestamp, nonce, method, target, body),
    }


class MemoryNonces:
    """Used nonces in this process (one server)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    async def first_use(self, key: str, seconds: int) -> bool:
        now = self._clock()
        if len(self._until) > 10_000:
            self._until = {k: t for k, t in self._until.items() if t > now}
        if self._until.get(key, 0.0) > now:
            return False
        self._until[key] = now + seconds
        return True


def check_signature(
    clients: Mapping[str, bytes],
    headers: Mapping[str, str],
    method: str,
    target: str,
    body: bytes,
    now: float,
    window: int = WINDOW_SECONDS,
) -> tuple[str, str]:
    """The (client name, nonce) of a validly signed request; `SignatureRefused` otherwise.

    The caller still checks that the nonce is new (`MemoryNonces.first_use`).
    """
    name = headers.get(INTEGRATOR_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    nonce = headers.get(NONCE_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (name and timestamp and nonce and given):
        raise SignatureRefused(
            f"sign the request: {INTEGRATOR_HEADER}, {TIMESTAMP_HEADER}, "
            f"{NONCE_HEADER} and {SIGNATURE_HEADER} are required"
        )
    secret = clients.get(name)
    if (
        secret is None
        or not TIMESTAMP.fullmatch(timestamp)
        or not NONCE.fullmatch(nonce)
        or not SIGNATURE.fullmatch(given)
    ):
        raise SignatureRefused("unknown integrator or malformed signature headers")
    expected = signature(secret, timestamp, nonce, method, target, body)
    if not hmac.compare_digest(given, expected):
        raise SignatureRefused("the signature does not match the request")
    if abs(now - int(timestamp)) > window:
        raise SignatureRefused(f"the timestamp must be within {window} s of the server's time")
    return name, nonce
