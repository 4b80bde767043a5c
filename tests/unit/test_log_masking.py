"""A password inside a Redis or RabbitMQ URL never reaches the logs or an error's text."""

from __future__ import annotations

import logging

import pytest

import bot.rasa_ext  # noqa: F401 - importing the package masks Rasa's loggers
from bot.rasa_ext.channels.wechat_store import SharedStore, SharedStoreUnavailable
from bot.rasa_ext.log_masking import masked_url

PASSWORD = "pa55-w0rd_secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            f"rediss://default:{PASSWORD}@cache.bank:6380/1",
            "rediss://default:***@cache.bank:6380/1",
        ),
        (f"amqp://bank:{PASSWORD}@rabbitmq:5672/", "amqp://bank:***@rabbitmq:5672/"),
        (
            f"postgresql+asyncpg://bank:{PASSWORD}@db/bank",
            "postgresql+asyncpg://bank:***@db/bank",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("amqp://guest@rabbitmq:5672/", "amqp://guest@rabbitmq:5672/"),
    ],
)
def test_the_password_of_a_url_is_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    assert masked_url(f"Connecting to '{url}' failed") == f"Connecting to '{shown}' failed"


def test_rasas_event_broker_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    """Rasa's pika broker writes its URL (`RABBITMQ_URL`) when it connects or fails to."""
    url = f"amqp://bank:{PASSWORD}@rabbitmq:5672/"
    with caplog.at_level(logging.INFO, logger="rasa.core.brokers.pika"):
        logger = logging.getLogger("rasa.core.brokers.pika")
        logger.info(f"RabbitMQ connection to '{url}' was established.")
        logger.error("Connecting to '%s' failed with error '%s'.", url, "timeout")
    assert PASSWORD not in caplog.text
    assert "amqp://bank:***@rabbitmq:5672/" in caplog.text


def test_the_wechat_store_names_its_redis_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:1/0"
    with caplog.at_level(logging.DEBUG, logger="bot.rasa_ext.channels.wechat_store"):
        SharedStore(url, scale=False)._failed(ConnectionError("refused"))
        with pytest.raises(SharedStoreUnavailable) as refused:
            SharedStore(url, scale=True)._failed(ConnectionError("refused"))
    assert PASSWORD not in caplog.text and PASSWORD not in str(refused.value)
    assert "redis://:***@127.0.0.1:1/0" in caplog.text
