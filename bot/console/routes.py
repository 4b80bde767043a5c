"""The console's route table: pages, the JSON API under `/api/`, and the static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.console import api, payment_push, views
from bot.console.agreement_pages import setup_agreement_routes
from bot.console.offer_pages import setup_offer_routes

STATIC = Path(__file__).resolve().parent / "static"
#: A case's or a referral's id in a path.
CASE_ID = r"{id:\d{1,9}}"


def setup_routes(app: web.Application) -> None:
    """Add every route of the console to `app`."""
    routes = app.router
    routes.add_get("/health", api.health)
    routes.add_get("/login", views.login_page)
    routes.add_post("/login", views.login)
    routes.add_post("/logout", views.logout)
    routes.add_get("/", views.queue_page)
    routes.add_get(f"/cases/{CASE_ID}", views.case_page)
    routes.add_post(f"/cases/{CASE_ID}/claim", views.claim_page)
    routes.add_post(f"/cases/{CASE_ID}/reply", views.reply_page)
    routes.add_post(f"/cases/{CASE_ID}/close", views.close_page)
    routes.add_get("/closed", views.closed_page)
    routes.add_get("/referrals", views.referrals_page)
    routes.add_post(f"/referrals/{CASE_ID}/acknowledge", views.acknowledge_page)

    routes.add_get("/api/me", api.api_me)
    routes.add_get("/api/cases", api.api_cases)
    routes.add_get(f"/api/cases/{CASE_ID}", api.api_case)
    routes.add_get(f"/api/cases/{CASE_ID}/transcript", api.api_transcript)
    routes.add_post(f"/api/cases/{CASE_ID}/claim", api.api_claim)
    routes.add_post(f"/api/cases/{CASE_ID}/reply", api.api_reply)
    routes.add_post(f"/api/cases/{CASE_ID}/close", api.api_close)
    routes.add_get("/api/referrals", api.api_referrals)
    routes.add_post(f"/api/referrals/{CASE_ID}/acknowledge", api.api_acknowledge)
    setup_offer_routes(app, CASE_ID)
    setup_agreement_routes(app, CASE_ID)

    routes.add_post(payment_push.PATH, payment_push.push_payments)

    routes.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
