"""The settings of one cluster (`bot.tools.cluster`): the scale profile's
variables, replica counts, ports and secrets."""

from __future__ import annotations

import os
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from bot.tools.stack import ROOT

SCALE_ENDPOINTS = "endpoints.scale.yml"
#: The shared services of this machine, used when the environment names none.
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bank"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: Rasa's lock store uses its own Redis database, next to the channels' one.
LOCK_STORE_REDIS_DB = "1"


def scale_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The scale profile's variables: those set in `environ`, the rest derived or default.

    `DATABASE_URL`, `REDIS_URL` and `RABBITMQ_URL` are the three a deployment
    sets; the tracker store, the lock store and the event broker take their
    settings from them unless given their own.
    """
    environ = dict(os.environ if environ is None else environ)
    database = environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database.startswith("postgresql"):
        raise ValueError("the scale profile needs PostgreSQL: set DATABASE_URL=postgresql://…")
    redis_url = environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    rabbitmq = environ.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL
    redis = urllib.parse.urlsplit(redis_url)
    broker = urllib.parse.urlsplit(rabbitmq)
    tracker = environ.get("TRACKER_DB_URL") or _sync_postgres_url(database)
    values = {
        "BOT_PROFILE": "scale",
        "DATABASE_URL": database,
        "TRACKER_DB_URL": tracker,
        "REDIS_URL": redis_url,
        "REDIS_HOST": redis.hostname or "127.0.0.1",
        "REDIS_PORT": str(redis.port or 6379),
        # The lock store takes host, port and credentials apart, not a URL.
        "REDIS_USERNAME": urllib.parse.unquote(redis.username or ""),
        "REDIS_PASSWORD": urllib.parse.unquote(redis.password or ""),
        "REDIS_LOCK_DB": LOCK_STORE_REDIS_DB,
        "REDIS_LOCK_PREFIX": "bank",
        "WEBCHAT_REDIS_URL": redis_url,
        "RABBITMQ_URL": rabbitmq,
        "RABBITMQ_USERNAME": urllib.parse.unquote(broker.username or "guest"),
        "RABBITMQ_PASSWORD": urllib.parse.unquote(broker.password or "guest"),
        "RABBITMQ_EVENTS_QUEUE": "rasa_events",
        "AUDIT_EXCHANGE": "bank.audit",
    }
    for name in values:
        if environ.get(name):
            values[name] = environ[name]
    values["BOT_PROFILE"] = "scale"
    return values


def _sync_postgres_url(url: str) -> str:
    """The same PostgreSQL database for Rasa's tracker store (psycopg2)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else url


@dataclass
class ClusterConfig:
    """Replica counts, ports and shared settings of one cluster."""

    rasa_replicas: int = 2
    action_replicas: int = 2
    console_replicas: int = 2
    #: nginx listens here (the public door), on +1 (consoles), +2 (actions) and +3
    #: (the Rasa HTTP API, for the consoles).
    entry_port: int = 8080
    #: Replicas listen from here: Rasa servers +0…, action servers +50…, consoles +80….
    first_port: int = 8100
    model: Path = ROOT / "models" / "current.tar.gz"
    #: The Rasa servers' `--jwt-secret`: the consoles sign their API calls with it.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    run_dir: Path = ROOT / "var" / "cluster"
    #: The scale profile (`scale_env()`), plus anything else the processes need.
    env: dict[str, str] = field(default_factory=scale_env)
    #: Run the audit relay (publishes the audit trail to RabbitMQ).
    audit_relay: bool = True

    def __post_init__(self) -> None:
        for name, count, most in (
            ("Rasa servers", self.rasa_replicas, 50),
            ("action servers", self.action_replicas, 30),
            ("consoles", self.console_replicas, 20),
        ):
            if not 1 <= count <= most:
                raise ValueError(f"the number of {name} must be between 1 and {most}")

    def rasa_port(self, index: int) -> int:
        return self.first_port + index

    def action_port(self, index: int) -> int:
        return self.first_port + 50 + index

    def console_port(self, index: int) -> int:
        return self.first_port + 80 + index

    def rasa_url(self, index: int) -> str:
        """One Rasa replica, directly (not through nginx)."""
        return f"http://127.0.0.1:{self.rasa_port(index)}"

    @property
    def rasa_urls(self) -> list[str]:
        return [self.rasa_url(i) for i in range(self.rasa_replicas)]

    @property
    def entry_url(self) -> str:
        """The public door: `/webhooks/` and `/socket.io/` only."""
        return f"http://127.0.0.1:{self.entry_port}"

    @property
    def rasa_api_url(self) -> str:
        """The Rasa servers' HTTP API through nginx, for the consoles (internal)."""
        return f"http://127.0.0.1:{self.entry_port + 3}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.entry_port + 1}"

    @property
    def action_entry_url(self) -> str:
        return f"http://127.0.0.1:{self.entry_port + 2}/webhook"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"
