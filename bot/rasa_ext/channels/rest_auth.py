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

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sanic.exceptions import SanicException
from sanic.request import Request

from bot.domain.signing import (
    INTEGRATOR_HEADER,
    MIN_SECRET_LENGTH,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WINDOW_SECONDS,
    MemoryNonces,
    SignatureRefused,
    canonical,
    check_signature,
    parse_clients,
    signature,
    signed_headers,
)
from bot.profile import require_shared, scale_profile

#: The signing scheme lives in `bot.domain.signing`; these names are used from here too.
__all__ = [
    "INTEGRATOR_HEADER",
    "MIN_SECRET_LENGTH",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WINDOW_SECONDS",
    "MemoryNonces",
    "Nonces",
    "RedisNonces",
    "ReplayCheckUnavailable",
    "RestAuthenticator",
    "Unauthorized",
    "canonical",
    "parse_integrators",
    "signature",
    "signed_headers",
    "signed_json",
]

logger = logging.getLogger(__name__)


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
    return parse_clients(value, "REST_INTEGRATORS")


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
        try:
            name, nonce = check_signature(
                self.integrators,
                request.headers,
                request.method,
                _target(request),
                request.body,
                self._clock(),
                self.window,
            )
        except SignatureRefused as refused:
            raise Unauthorized(str(refused)) from None
        if not await self.nonces.first_use(f"{name}:{nonce}", 2 * self.window):
            raise Unauthorized("this nonce was used already: sign every request anew")
        return name
