"""Delivering the reminders outbox to WeChat users.

    python -m bot.rasa_ext.reminders send [--now 2026-12-10T10:00:00+08:00]

(`make reminders`) sends every WeChat reminder that is due and prints one JSON
line of counts. Run it after the daily sweep and every few minutes from a
schedule: reminders deferred past quiet hours and retries wait in the outbox
(`bot.store.reminders`) until their time, and several senders at once never
send one twice. Web chat and REST reminders are not sent from here: the
conversation shows them at the debtor's next visit.

WeChat's rules decide the API: the customer-service message API only within 48
hours of the user's last message (the channel records it in the shared store),
otherwise the template message `WECHAT_REMINDER_TEMPLATE_ID` (its fields:
`first` the reminder's text, `keyword1` the due date, `keyword2` the amount,
`keyword3` the agreement's reference). A customer-service message refused as
outside the window (errcode 45015, 45047) goes as a template message instead.
Failures are retried with the policy's backoff; a refusal no retry can change
(the user unsubscribed, a wrong openid or template) fails at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from bot.domain.clock import BEIJING, weekday_name
from bot.domain.policy import Lifecycle, current_policy
from bot.domain.reminders import in_quiet_hours, wechat_route
from bot.domain.script import convert
from bot.rasa_ext.channels.wechat_api import WeChatApi, WeChatApiError
from bot.rasa_ext.channels.wechat_config import (
    WeChatConfig,
    last_message_key,
    openid_of,
    script_key,
)
from bot.rasa_ext.channels.wechat_store import MemoryStore, SharedStore, SharedStoreUnavailable
from bot.store.engine import Database, database_url
from bot.store.reminders import (
    OutboxItem,
    claim_due,
    defer,
    mark_failed,
    mark_sent,
    still_wanted,
)

#: The customer-service API refused the message as outside its window or quota.
OUT_OF_WINDOW = frozenset({45015, 45047})
#: Refusals no retry changes: bad openid, unsubscribed, bad template, subscription refused.
PERMANENT = frozenset({40003, 40037, 43004, 43101})
RESPONSES = {
    "installment_due": "utter_reminder_installment_due",
    "promise_due": "utter_reminder_promise_due",
    "plan_ended": "utter_reminder_plan_ended",
}


@dataclass
class DeliveryCounts:
    """What one `send` did."""

    sent_custom: int = 0
    sent_template: int = 0
    retrying: int = 0
    failed: int = 0
    dropped: int = 0
    deferred: int = 0


def load_texts(domain_path: str) -> dict[str, str]:
    """The reminder texts (first variation of each response) from the domain file."""
    from rasa.shared.core.domain import Domain

    responses = Domain.load(domain_path).responses
    texts = {}
    for kind, name in RESPONSES.items():
        variations = responses.get(name) or []
        text = next((v.get("text") for v in variations if v.get("text")), None)
        if not text:
            raise ValueError(f"{domain_path} has no response {name}")
        texts[kind] = str(text)
    return texts


def reminder_values(item: OutboxItem) -> dict[str, str]:
    """The values a reminder's text is filled with."""
    amount = "" if item.amount is None else f"{item.amount:,.2f}"
    return {
        "reference": item.reference,
        "amount": amount,
        "currency": item.currency,
        "due_date": f"{item.due_on.isoformat()}（{weekday_name(item.due_on)}）",
    }


def render(texts: dict[str, str], item: OutboxItem) -> str:
    """The text of a reminder, filled in the way Rasa fills a response."""
    from rasa.core.nlg.interpolator import interpolate_text

    return str(interpolate_text(texts[item.kind], reminder_values(item)))


async def _last_message(
    store: SharedStore | MemoryStore, config: WeChatConfig, openid: str
) -> datetime | None:
    try:
        value = await store.get(last_message_key(config.app_id, openid))
    except SharedStoreUnavailable:
        return None
    try:
        return datetime.fromtimestamp(float(value), timezone.utc) if value else None
    except ValueError:
        return None


async def _script(
    store: SharedStore | MemoryStore, config: WeChatConfig, openid: str
) -> str | None:
    """The script the user was last answered in (`bot.domain.script`), if known."""
    try:
        return await store.get(script_key(config.app_id, openid))
    except SharedStoreUnavailable:
        return None


async def _deliver(
    item: OutboxItem,
    text: str,
    api: WeChatApi,
    store: SharedStore | MemoryStore,
    config: WeChatConfig,
    now: datetime,
) -> str:
    """Send one reminder; the route it went by. `WeChatApiError` if WeChat refused it."""
    openid = openid_of(item.conversation_id)
    # In the script the debtor reads, as every reply of the conversation.
    text = convert(text, await _script(store, config, openid))
    route = wechat_route(await _last_message(store, config, openid), now)
    if route == "custom":
        try:
            await api.send_text(openid, text)
            return "custom"
        except WeChatApiError as error:
            if error.errcode not in OUT_OF_WINDOW:
                raise
    if not config.reminder_template_id:
        raise WeChatApiError("no template message configured", errcode=40037)
    values = reminder_values(item)
    await api.send_template(
        openid,
        config.reminder_template_id,
        {
            "first": text,
            "keyword1": values["due_date"],
            "keyword2": f"{values['amount']} {item.currency}".strip(),
            "keyword3": item.reference,
        },
    )
    return "template"


async def send_due(
    database: Database,
    api: WeChatApi,
    store: SharedStore | MemoryStore,
    config: WeChatConfig,
    texts: dict[str, str],
    now: datetime,
    lifecycle: Lifecycle,
) -> DeliveryCounts:
    """Send the WeChat reminders due by `now` (none inside quiet hours)."""
    counts = DeliveryCounts()
    if in_quiet_hours(now, lifecycle.quiet_hours):
        return counts
    for item in await claim_due(database, now, ("wechat",)):
        reason = await still_wanted(database, item, now, lifecycle)
        if reason is not None:
            await mark_failed(database, item.id, reason, now, lifecycle, final=True)
            counts.dropped += 1
            continue
        if in_quiet_hours(now, lifecycle.quiet_hours):
            await defer(database, item.id, now, lifecycle)
            counts.deferred += 1
            continue
        try:
            route = await _deliver(item, render(texts, item), api, store, config, now)
        except WeChatApiError as error:
            code = f"errcode {error.errcode}" if error.errcode is not None else "unreachable"
            status = await mark_failed(
                database, item.id, code, now, lifecycle, final=error.errcode in PERMANENT
            )
            if status == "failed":
                counts.failed += 1
            else:
                counts.retrying += 1
            continue
        await mark_sent(database, item.id, route, now)
        if route == "custom":
            counts.sent_custom += 1
        else:
            counts.sent_template += 1
    return counts


async def send_command(now: datetime) -> dict[str, Any]:
    """What `send` does, configured from the environment; its JSON line as a dict."""
    config = WeChatConfig.from_sources(None, os.environ)
    if not config.app_id or not config.app_secret:
        # Without WeChat no conversation is a WeChat one: nothing to send.
        return {"at": now.isoformat(), "skipped": "WeChat is not configured (WECHAT_APP_ID)"}
    database = Database(database_url())
    store = SharedStore(config.redis_url)
    api = WeChatApi(config.app_id, config.app_secret, config.api_base, store=store)
    try:
        texts = await asyncio.to_thread(load_texts, config.domain_path)
        counts = await send_due(
            database, api, store, config, texts, now, current_policy().lifecycle
        )
    finally:
        await api.close()
        await store.close()
        await database.dispose()
    return {"at": now.isoformat(), **asdict(counts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.rasa_ext.reminders")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send the WeChat reminders that are due")
    send.add_argument("--now", default=None, help="the time to send as of (ISO 8601, with offset)")
    args = parser.parse_args(argv)
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            parser.error("--now: give a time such as 2026-12-10T10:00:00+08:00")
        if now.tzinfo is None:
            now = now.replace(tzinfo=BEIJING)
    else:
        now = datetime.now(timezone.utc)
    result = asyncio.run(send_command(now))
    print(json.dumps(result, ensure_ascii=False))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
