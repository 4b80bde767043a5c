"""The staff console: negotiators take over conversations the assistant handed off.

An aiohttp application with server-rendered pages (`views`, Jinja2, autoescaped)
and a JSON API under `/api/` that mirrors them (`api`); the route table is in
`routes`, sign-in, CSRF and the security headers in `middlewares`.

A negotiator sees waiting cases and the ones they hold; anything else answers
404, as if it did not exist. Supervisors see everything, closed cases and the
collections referrals included.

Staff replies and the resumption of the assistant after a case is closed go
through the Rasa HTTP API (`rasa_api`). A resumption that fails is retried in
the background every `resume_retry_seconds` for a day; the cases still waiting
are read from the database, so a restart of the console forgets none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.console.middlewares import MAX_BODY_BYTES, authenticate, errors, security_headers
from bot.console.payment_push import PUSH, PaymentPush
from bot.console.rasa_api import RasaClient
from bot.console.routes import setup_routes
from bot.console.sessions import SessionStore
from bot.console.state import CONSOLE, RETRY_TASK, Console
from bot.store import transcript as transcripts
from bot.store.engine import Database

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"


async def _retry_loop(console: Console) -> None:
    while True:
        await asyncio.sleep(console.resume_retry_seconds)
        try:
            await console.retry_resumes()
        except Exception:
            logger.exception("retrying resumptions failed")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    console = app[CONSOLE]
    await console.rasa.start()
    task = asyncio.create_task(_retry_loop(console))
    app[RETRY_TASK] = task
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await console.rasa.close()
    await transcripts.dispose()


def create_app(
    db: Database,
    *,
    rasa_url: str,
    rasa_token: str,
    secret_key: bytes,
    secure_cookies: bool = True,
    resume_retry_seconds: float = 10.0,
    rasa_timeout: float = 10.0,
    payment_push: PaymentPush | None = None,
) -> web.Application:
    """The console application on `db`, talking to the Rasa server at `rasa_url`.

    `rasa_token` is the Rasa servers' `--jwt-secret`: the console signs a
    short-lived token with it for each call (`bot.console.rasa_api`). Who may push
    payments comes from `PAYMENT_PUSH_CLIENTS` unless `payment_push` says.
    """
    app = web.Application(middlewares=[errors, authenticate], client_max_size=MAX_BODY_BYTES)
    app[CONSOLE] = Console(
        db=db,
        rasa=RasaClient(rasa_url, rasa_token, timeout=rasa_timeout),
        sessions=SessionStore(secret_key, secure=secure_cookies),
        resume_retry_seconds=resume_retry_seconds,
    )
    app[PUSH] = payment_push or PaymentPush.from_env()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    app.on_response_prepare.append(security_headers)  # type: ignore[arg-type]
    app.cleanup_ctx.append(_lifecycle)
    setup_routes(app)
    return app
