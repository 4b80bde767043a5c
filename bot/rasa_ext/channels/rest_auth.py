"""Who may use the REST channel: integrators that sign their requests.

`REST_INTEGRATORS` names each integrator and its shared secret,
`name:secret[,name:secret…]` (a name is 1-32 of `a-z 0-9 _ -`; a secret at
least 32 characters, no comma). When it is set, every request to
`/webhooks/rest/webhook` and `/webhooks/rest/staff_messages` must carry:

    X-Integrator: <name>
    X-Timestamp:  <Unix time in whole seconds>
    X-Nonce:      <16-64 characters of A-Z a-z 0-9 _ -, new for every request>
    X-Signature:  <hex HMAC-SHA256 under the secret of the canonical string>

where the canonical string is these five lines joined by `\\n`: the timestamp,
the nonce, the method (`POST`), the path with its query string as sent
(`/webhooks/rest/webhook`, `/webhooks/rest/staff_messages?sender=…`), and the
hex SHA-256 of the body (of the empty body for a GET). `signed_headers` makes
them; `signed_json` gives a client the body and headers of a signed POST.

A request is refused with HTTP 401 when a header is missing or malformed, the
integrator unknown, the signature wrong, the timestamp more than
`WINDOW_SECONDS` away from the server's clock, or the nonce already used by
that integrator within the window. In the scale profile `REST_INTEGRATORS` is
required (a replica will not start without it) and nonces are remembered in
Redis (`REDIS_URL`), so that a request replayed to another replica is refused
too (HTTP 503 while Redis cannot be asked); elsewhere they are remembered in
this process, and without `REST_INTEGRATORS` (development only) the channel is
open to anyone, with a warning at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sanic.exceptions import SanicException
from sanic.request import Request

from bot.profile import require_shared, scale_profile

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 300
MIN_SECRET_LENGTH = 32
INTEGRATOR_HEADER = "X-Integrator"
TIMESTAMP_HEADER = "X-Timestamp"
NONCE_HEADER = "X-Nonce"
SIGNATURE_HEADER = "X-Signature"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


class Unauthorized(SanicException):
    """A REST request without a valid integrator signature."""

    status_code = 401
    quiet = True


class ReplayCheckUnavailable(SanicException):
    """The shared store of used nonces cannot be asked."""

    status_code = 503
    quiet = True


def parse_integrators(value: str) -> dict[str, bytes]:
    """`name:secret,…` as a mapping; ValueError naming the problem otherwise."""
    integrators: dict[str, bytes] = {}
    for entry in value.split(","):
        name, _, secret = entry.strip().partition(":")
        if not _NAME.fullmatch(name):
            raise ValueError(
                "REST_INTEGRATORS: each entry is name:secret, a name 1-32 of a-z 0-9 _ -"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"REST_INTEGRATORS: the secret of {name!r} must have at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        if name in integrators:
            raise ValueError(f"REST_INTEGRATORS: {name!r} is named twice")
        integrators[name] = secret.encode()
    return integrators


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


def signed_json(body: Any, url: str, integrators: str = "") -> dict[str, Any]:
    """aiohttp's `data` and `headers` to POST `body` as JSON to `url`, signed as the
    first integrator of `integrators` (a `REST_INTEGRATORS` value); unsigned without one."""
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if integrators.strip():
        name, secret = next(iter(parse_integrators(integrators).items()))
        headers.update(signed_headers(name, secret, "POST", url, data))
    return {"data": data, "headers": headers}


class Nonces(Protocol):
    """Remembers used nonces for a while."""

    async def first_use(self, key: str, seconds: int) -> bool:
        """Record `key` for `seconds`; whether it was not recorded already."""
        ...


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


class RedisNonces:
    """Used nonces in Redis, shared by every replica."""

    #: A burst of requests shares a few connections and waits for one (up to
    #: `WAIT_SECONDS`) instead of opening one each: fifty at once on a busy
    #: machine otherwise time out connecting and are refused with 503.
    MAX_CONNECTIONS = 16
    WAIT_SECONDS = 5.0

    def __init__(self, url: str) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=self.MAX_CONNECTIONS,
            timeout=self.WAIT_SECONDS,
            socket_connect_timeout=3,
            socket_timeout=3,
        )
        self._redis: Any = aioredis.Redis(connection_pool=pool)

    async def first_use(self, key: str, seconds: int) -> bool:
        try:
            return bool(await self._redis.set(f"rest-nonce:{key}", b"1", nx=True, ex=seconds))
        except (RedisError, OSError) as error:
            logger.error("REST channel: cannot check nonces in Redis (%s)", type(error).__name__)
            raise ReplayCheckUnavailable("the replay check is unavailable") from error


def _target(request: Request) -> str:
    query = request.query_string
    return request.path + (f"?{query}" if query else "")


class RestAuthenticator:
    """Checks the integrator signature of REST requests (all pass when none are configured)."""

    def __init__(
        self,
        integrators: dict[str, bytes],
        nonces: Nonces,
        *,
        window: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.integrators = integrators
        self.nonces = nonces
        self.window = window
        self._clock = clock

    @classmethod
    def from_env(cls) -> RestAuthenticator:
        """From `REST_INTEGRATORS` (required in the scale profile) and `REDIS_URL`."""
        integrators = (
            parse_integrators(value) if (value := require_shared("REST_INTEGRATORS")) else {}
        )
        if not integrators:
            logger.warning(
                "REST_INTEGRATORS is not set: the REST channel accepts unsigned requests "
                "from anyone (development only)"
            )
        nonces: Nonces = (
            RedisNonces(require_shared("REDIS_URL")) if scale_profile() else MemoryNonces()
        )
        return cls(integrators, nonces)

    @property
    def required(self) -> bool:
        return bool(self.integrators)

    async def check(self, request: Request) -> str | None:
        """The integrator that signed `request`; None when signing is not required.

        Raises `Unauthorized` (401) for a request that is not validly signed.
        """
        if not self.required:
            return None
        headers = request.headers
        name = headers.get(INTEGRATOR_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not (name and timestamp and nonce and given):
            raise Unauthorized(
                f"sign the request: {INTEGRATOR_HEADER}, {TIMESTAMP_HEADER}, "
                f"{NONCE_HEADER} and {SIGNATURE_HEADER} are required"
            )
        secret = self.integrators.get(name)
        if (
            secret is None
            or not _TIMESTAMP.fullmatch(timestamp)
            or not _NONCE.fullmatch(nonce)
            or not _SIGNATURE.fullmatch(given)
        ):
            raise Unauthorized("unknown integrator or malformed signature headers")
        expected = signature(
            secret, timestamp, nonce, request.method, _target(request), request.body
        )
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("the signature does not match the request")
        if abs(self._clock() - int(timestamp)) > self.window:
            raise Unauthorized(f"the timestamp must be within {self.window} s of the server's time")
        if not await self.nonces.first_use(f"{name}:{nonce}", 2 * self.window):
            raise Unauthorized("this nonce was used already: sign every request anew")
        return name
