"""The payment push endpoint of the console, `POST /api/payments`, on SQLite and PostgreSQL.

The console runs in a real aiohttp test server; requests are signed as the
bank's core system signs them (`bot.domain.signing`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.console.app import create_app
from bot.console.payment_push import MAX_PAYMENTS, PATH, PaymentPush
from bot.domain.signing import signed_headers
from bot.store import audit, staff
from bot.store.engine import Database
from bot.store.payment_models import Payment
from tests.support.payments import ACCOUNT_NOS, payment_references
from tests.support.staff import cheap_argon2

SECRET = "s" * 40
ZHANG = ACCOUNT_NOS["张伟"]
GOOD = {"account_no": ZHANG, "paid_on": "2026-11-15", "amount": "1000.00", "reference": "PU001"}


@dataclass
class Push:
    client: TestClient
    db: Database

    async def post(
        self,
        body: Any,
        *,
        raw: bytes | None = None,
        name: str = "core",
        secret: str = SECRET,
        now: float | None = None,
        nonce: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
        signed = signed_headers(name, secret, "POST", PATH, data, now=now, nonce=nonce)
        response = await self.client.post(
            PATH,
            data=data,
            headers={"Content-Type": content_type, **signed, **(headers or {})},
        )
        return response.status, await response.json()


async def _client(db: Database, push: PaymentPush) -> TestClient:
    app = create_app(
        db,
        rasa_url="http://127.0.0.1:9",
        rasa_token="t" * 32,
        secret_key=b"k" * 32,
        secure_cookies=False,
        payment_push=push,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def push(db: Database) -> AsyncIterator[Push]:
    client = await _client(db, PaymentPush({"core": SECRET.encode()}))
    try:
        yield Push(client, db)
    finally:
        await client.close()


async def test_a_signed_push_stores_the_payments_once(push: Push) -> None:
    second = GOOD | {"reference": "PU002", "amount": 12.5, "paid_on": "2026-11-16"}
    status, body = await push.post({"payments": [GOOD, second]})
    assert status == 200, body
    assert body == {"rows": 2, "imported": 2, "already_imported": 0, "rejected": 0, "errors": []}
    async with push.db.session() as session:
        stored = await session.get(Payment, 2)
        assert stored is not None
        assert (stored.reference, str(stored.amount), stored.source) == ("PU002", "12.50", "push")
    entries = [e for e in await audit.entries(push.db) if e.action == "payments_imported"]
    assert [(e.details["client"], e.details["source"]) for e in entries] == [("core", "push")]
    status, body = await push.post({"payments": [GOOD, second]})
    assert (status, body["imported"], body["already_imported"]) == (200, 0, 2)


async def test_bad_payments_are_refused_by_index_and_the_good_ones_stored(push: Push) -> None:
    payments = [
        GOOD,
        GOOD | {"reference": "PU002", "amount": "-3"},
        GOOD | {"reference": "PU003", "account_no": "6222999999999999"},
        GOOD | {"reference": "PU004", "paid_on": "2099-01-01"},
        GOOD | {"amount": "999.00"},
        "not an object",
        GOOD | {"reference": "PU005", "extra": 1},
        {"reference": "PU006"},
        GOOD | {"reference": "PU007", "amount": "BIG"},
        GOOD | {"reference": "<img src=x onerror=alert(1)>"},
        GOOD | {"reference": "PU008", "amount": [1]},
    ]
    # A number beyond any float, read exactly: too large, not infinite.
    raw = json.dumps({"payments": payments}).replace('"BIG"', "1e400").encode()
    status, body = await push.post(None, raw=raw)
    assert status == 200
    assert [(e["index"], e["reference"], e["error"]) for e in body["errors"]] == [
        (1, "PU002", "negative_amount"),
        (2, "PU003", "unknown_account"),
        (3, "PU004", "future_date"),
        (4, "PU001", "duplicate_reference"),
        (5, None, "bad_columns"),
        (6, None, "bad_columns"),
        (7, None, "bad_columns"),
        (8, "PU007", "amount_too_large"),
        (9, None, "bad_reference"),
        (10, "PU008", "bad_amount"),
    ]
    assert (body["imported"], body["rejected"]) == (1, 10)
    assert await payment_references(push.db) == ["PU001"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "stranger"}, "unknown integrator"),
        ({"secret": "x" * 40}, "does not match"),
        ({"now": time.time() - 3600}, "within 300 s"),
        ({"headers": {"X-Signature": "0" * 64}}, "does not match"),
        ({"headers": {"X-Nonce": "short"}}, "malformed"),
    ],
)
async def test_a_request_not_validly_signed_is_401_and_stores_nothing(
    push: Push, change: dict[str, Any], message: str
) -> None:
    status, body = await push.post({"payments": [GOOD]}, **change)
    assert status == 401
    assert message in body["error"]
    assert await payment_references(push.db) == []


async def test_unsigned_requests_and_staff_sessions_are_not_credentials(push: Push) -> None:
    await staff.create_staff(push.db, "sam", "张主管", "correct horse battery", "supervisor")
    page = await (await push.client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"username": "sam", "password": "correct horse battery", "csrf_token": token[1]}
    signed_in = await push.client.post("/login", data=form, allow_redirects=False)
    assert signed_in.status == 303
    csrf = (await (await push.client.get("/api/me")).json())["csrf_token"]
    response = await push.client.post(
        PATH, json={"payments": [GOOD]}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 401
    assert "sign the request" in (await response.json())["error"]
    assert await payment_references(push.db) == []


async def test_a_replayed_request_is_refused(push: Push) -> None:
    assert (await push.post({"payments": [GOOD]}, nonce="n" * 20))[0] == 200
    status, body = await push.post({"payments": [GOOD]}, nonce="n" * 20)
    assert status == 401
    assert "nonce" in body["error"]


async def test_without_credentials_configured_the_endpoint_is_off(db: Database) -> None:
    client = await _client(db, PaymentPush({}))
    try:
        signed = signed_headers("core", SECRET, "POST", PATH, b"{}")
        response = await client.post(PATH, data=b"{}", headers=signed)
        assert response.status == 503
        assert "PAYMENT_PUSH_CLIENTS" in (await response.json())["error"]
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"{not json", 400, "JSON"),
        (b"\xff\xfe{}", 400, "UTF-8"),
        (b"[1, 2]", 400, "JSON 对象"),
        (b'{"payments": "all"}', 400, "payments"),
        (b'{"payments": []}', 400, "payments"),
        (b'{"payments": [{"amount": NaN}]}', 400, "JSON"),
        (b'{"payments": ' + b"[" * 20000 + b"]" * 20000 + b"}", 400, "JSON"),
        (json.dumps({"payments": [GOOD] * (MAX_PAYMENTS + 1)}).encode(), 400, "500"),
        (b'{"payments": ["' + b"x" * 70000 + b'"]}', 413, "64 KB"),
    ],
)
async def test_malformed_and_huge_bodies_get_a_clear_answer(
    push: Push, raw: bytes, status: int, message: str
) -> None:
    got, body = await push.post(None, raw=raw)
    assert got == status, body
    assert message in body["error"]
    assert await payment_references(push.db) == []


async def test_a_body_that_is_not_declared_json_is_415(push: Push) -> None:
    status, body = await push.post({"payments": [GOOD]}, content_type="text/plain")
    assert status == 415
    assert "application/json" in body["error"]


def test_a_bad_credentials_setting_stops_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_PUSH_CLIENTS", "core:short")
    with pytest.raises(ValueError, match="PAYMENT_PUSH_CLIENTS"):
        PaymentPush.from_env()
    monkeypatch.setenv("PAYMENT_PUSH_CLIENTS", f"core:{SECRET}, bank2:{SECRET}")
    assert set(PaymentPush.from_env().clients) == {"core", "bank2"}


@pytest.fixture(autouse=True)
def _cheap_argon2() -> Any:
    with cheap_argon2():
        yield
