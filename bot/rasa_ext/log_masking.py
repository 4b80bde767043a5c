"""Passwords in service URLs (`REDIS_URL`, `RABBITMQ_URL`, …) never reach the logs.

`masked_url` is what this project writes when it names a Redis or RabbitMQ
server in a log line or an exception. Rasa itself writes the event broker's
URL (`RABBITMQ_URL`, with its password) when it connects or fails to:
`mask_rasa_loggers` puts `MaskPasswords` on the loggers that do, and runs
when `bot.rasa_ext` is first imported (before Rasa creates the broker).
"""

from __future__ import annotations

import logging
import re

MASK = "***"

#: `scheme://user:password@`: the password is what is masked.
_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s/?#]*@", re.IGNORECASE)

#: Rasa's loggers that write a service URL as configured.
RASA_LOGGERS_WITH_URLS = ("rasa.core.brokers.pika",)


def masked_url(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _CREDENTIALS.sub(rf"\g<1>{MASK}@", text)


class MaskPasswords(logging.Filter):
    """Rewrites a log record whose message holds a URL with a password."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = masked_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_rasa_loggers() -> None:
    """Put `MaskPasswords` on Rasa's loggers that write service URLs (once)."""
    for name in RASA_LOGGERS_WITH_URLS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskPasswords) for f in logger.filters):
            logger.addFilter(MaskPasswords())
