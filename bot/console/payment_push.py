"""Payments pushed by the bank's core system: `POST /api/payments`, signed, JSON.

Machine credentials, not staff sessions: `PAYMENT_PUSH_CLIENTS` names each
system and its shared secret (`name:secret[,…]`, secrets of at least 32
characters), and every request is signed as the REST channel's are
(`bot.domain.signing`: `X-Integrator`, `X-Timestamp`, `X-Nonce`, `X-Signature`
over the timestamp, nonce, method, path and body hash). Without the setting
the endpoint answers 503: it is never open.

The body is `{"payments": [{"account_no", "paid_on", "amount", "reference"}, …]}`,
1 to `MAX_PAYMENTS` of them within 64 KB; amounts are strings ("1234.50") or
JSON numbers read exactly, never through floats. The answer is what
`bot.store.payment_import` did, each refused payment by its `index` in the
list; the good ones are stored even when others are refused. A replayed
request is refused by its nonce on the same console; on another replica it
changes nothing either, since each reference is stored once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.console.handling import Problem
from bot.console.middlewares import MACHINE_PATHS, MAX_BODY_BYTES
from bot.console.state import console_of
from bot.console.texts import PUSH_ERRORS
from bot.domain.clock import beijing_today
from bot.domain.payments import COLUMNS, RowError
from bot.domain.signing import WINDOW_SECONDS, MemoryNonces, SignatureRefused, check_signature
from bot.domain.signing import parse_clients as parse_clients
from bot.store.payment_import import import_payments

PATH = "/api/payments"
assert PATH in MACHINE_PATHS
SETTING = "PAYMENT_PUSH_CLIENTS"
MAX_PAYMENTS = 500


@dataclass
class PaymentPush:
    """Who may push payments, and the nonces they used."""

    clients: Mapping[str, bytes]
    nonces: MemoryNonces = field(default_factory=MemoryNonces)
    clock: Callable[[], float] = time.time

    @classmethod
    def from_env(cls) -> PaymentPush:
        """From `PAYMENT_PUSH_CLIENTS` (none: the endpoint is off); ValueError if malformed."""
        value = os.environ.get(SETTING, "").strip()
        return cls(parse_clients(value, SETTING) if value else {})


PUSH = web.AppKey("payment_push", PaymentPush)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _payload(body: bytes) -> list[Any]:
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # also bad UTF-8, and nesting too deep to parse
        raise Problem(400, PUSH_ERRORS["not_json"]) from None
    if not isinstance(data, dict):
        raise Problem(400, PUSH_ERRORS["not_object"])
    payments = data.get("payments")
    if not isinstance(payments, list) or not 1 <= len(payments) <= MAX_PAYMENTS:
        raise Problem(400, PUSH_ERRORS["no_payments"].format(limit=MAX_PAYMENTS))
    return payments


async def push_payments(request: web.Request) -> web.Response:
    """Store the pushed payments; 200 with what was imported and what was refused."""
    push = request.app[PUSH]
    if not push.clients:
        raise Problem(503, PUSH_ERRORS["not_configured"])
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, PUSH_ERRORS["too_large"])
    body = await request.read()
    try:
        name, nonce = check_signature(
            push.clients,
            request.headers,
            request.method,
            request.raw_path,
            body,
            push.clock(),
            WINDOW_SECONDS,
        )
    except SignatureRefused as refused:
        raise Problem(401, PUSH_ERRORS["unsigned"].format(detail=refused)) from None
    if not await push.nonces.first_use(f"{name}:{nonce}", 2 * WINDOW_SECONDS):
        raise Problem(401, PUSH_ERRORS["nonce_used"])
    if request.content_type != "application/json":
        raise Problem(415, PUSH_ERRORS["not_json_type"])
    rows: list[tuple[int, Mapping[str, object]]] = []
    bad: list[RowError] = []
    for index, item in enumerate(_payload(body)):
        if not isinstance(item, dict) or set(item) != set(COLUMNS):
            bad.append(RowError(index, None, "bad_columns"))
        else:
            rows.append((index, item))
    result = await import_payments(
        console_of(request).db,
        rows,
        source="push",
        today=beijing_today(),
        bad=bad,
        details={"client": name},
    )
    return web.json_response(result.to_dict("index"))
