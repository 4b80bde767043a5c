"""Rasa's RabbitMQ event broker, publishing no verification secret.

The tracker store hands over each turn already masked (`bot.domain.redaction`);
whatever else reaches the broker (Rasa's own publishing paths, events kept
while RabbitMQ was away) is masked here, just before it leaves, on the same
rules. Configure it in `endpoints.scale.yml` with the keys of Rasa's `pika`
broker:

    event_broker:
      type: bot.rasa_ext.event_broker.RedactingPikaEventBroker
"""

from __future__ import annotations

from typing import Any

from rasa.core.brokers.pika import PikaEventBroker

from bot.domain.redaction import redact_event


class RedactingPikaEventBroker(PikaEventBroker):
    """`PikaEventBroker` whose every message has the verification secrets masked."""

    async def _publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        await super()._publish(redact_event(event), headers)
