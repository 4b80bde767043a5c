"""Several Rasa servers and action servers behind nginx, on the scale profile.

`make cluster N=2 M=2` runs this module: N Rasa servers, M action servers, two
staff consoles and the audit relay, each a process on loopback, behind one nginx
(Debian's package) that spreads requests over the replicas:

| nginx port      | upstream                                  |
|-----------------|-------------------------------------------|
| entry (8080)    | the Rasa servers: REST, WeChat, web chat, socket.io, HTTP API |
| entry + 1       | the staff consoles                        |
| entry + 2       | the action servers (for the Rasa servers; loopback only)   |

All replicas share their state through PostgreSQL (the application database and
Rasa's tracker store), Redis (Rasa's lock store, the WeChat channel, socket.io)
and RabbitMQ (Rasa's event broker and the audit trail): the scale profile of
`endpoints.scale.yml`, configured by the environment variables `scale_env`
reads. The end-to-end cluster tests and `make bench --cluster` start the same
`Cluster`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.tools.stack import (
    ROOT,
    ProcessGroup,
    action_server_args,
    console_args,
    rasa_server_args,
    stop_on_sigterm,
    webchat_session_key,
)

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


def _on_server(url: str, statement: str, *values: str) -> Any:
    """Run one statement on the PostgreSQL server of `url`, outside any database of ours."""
    import psycopg2

    parsed = urllib.parse.urlsplit(_sync_postgres_url(url))
    admin = urllib.parse.urlunsplit(parsed._replace(path="/postgres", query=""))
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, values)
            return cursor.fetchone() if cursor.description else None
    finally:
        connection.close()


def _database_name(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"unexpected database name {name!r}")
    return name


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database `url` names, if it does not exist yet."""
    name = _database_name(url)
    if _on_server(url, "SELECT 1 FROM pg_database WHERE datname = %s", name) is None:
        _on_server(url, f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database `url` names (scratch databases of tests and benchmarks)."""
    _on_server(url, f'DROP DATABASE IF EXISTS "{_database_name(url)}" WITH (FORCE)')


def delete_queue(rabbitmq_url: str, name: str) -> None:
    """Delete a RabbitMQ queue (the scratch event queues of tests and benchmarks)."""
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect_robust(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)

    asyncio.run(delete())


def create_tracker_tables(url: str) -> None:
    """Create Rasa's tracker tables once, before replicas race to create them."""
    import sqlalchemy as sa
    from rasa.core.tracker_store import SQLTrackerStore

    import bot.rasa_ext.tracker_store  # noqa: F401  (registers the conversation_state table)

    engine = sa.create_engine(url)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


@dataclass
class ClusterConfig:
    """Replica counts, ports and shared settings of one cluster."""

    rasa_replicas: int = 2
    action_replicas: int = 2
    console_replicas: int = 2
    #: nginx listens here (Rasa), on +1 (console) and +2 (actions).
    entry_port: int = 8080
    #: Replicas listen from here: Rasa servers +0…, action servers +50…, consoles +80….
    first_port: int = 8100
    model: Path = ROOT / "models" / "current.tar.gz"
    auth_token: str = ""
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
        return f"http://127.0.0.1:{self.entry_port}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.entry_port + 1}"

    @property
    def action_entry_url(self) -> str:
        return f"http://127.0.0.1:{self.entry_port + 2}/webhook"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"


def nginx_config(config: ClusterConfig) -> str:
    """nginx's configuration for `config`: three load-balanced servers."""

    def servers(ports: list[int]) -> str:
        # A replica that refuses a connection is skipped for 2 s: its requests
        # go to the next one (nginx retries only what it has not yet sent).
        return "\n".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports
        )

    rasa = [config.rasa_port(i) for i in range(config.rasa_replicas)]
    actions = [config.action_port(i) for i in range(config.action_replicas)]
    consoles = [config.console_port(i) for i in range(config.console_replicas)]
    log = config.log_dir
    proxy = """
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout http_502 http_503;"""
    return f"""# Written by bot/tools/cluster.py for this cluster; rewritten at every start.
worker_processes 1;
pid {config.run_dir}/nginx.pid;
error_log {log}/nginx-error.log warn;

events {{
  worker_connections 4096;
}}

http {{
  log_format upstream '$time_iso8601 $request_method $uri $status '
                      'upstream=$upstream_addr time=$request_time';
  access_log {log}/nginx-access.log upstream;
  client_body_temp_path {config.run_dir}/nginx-temp/body;
  proxy_temp_path {config.run_dir}/nginx-temp/proxy;
  fastcgi_temp_path {config.run_dir}/nginx-temp/fastcgi;
  uwsgi_temp_path {config.run_dir}/nginx-temp/uwsgi;
  scgi_temp_path {config.run_dir}/nginx-temp/scgi;
  client_max_body_size 2m;
  # Requests and answers stay in memory: an action server call carries the
  # whole domain, and nginx's workers may not write where the cluster runs.
  client_body_buffer_size 2m;
  proxy_buffer_size 64k;
  proxy_buffers 64 32k;
  proxy_busy_buffers_size 128k;
  proxy_max_temp_file_size 0;

  map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
  }}

  # No idle connections are kept to the replicas: a request sent on a kept
  # connection to a replica that has died fails after it was sent, and nginx
  # cannot pass a POST on to the next replica then; a new connection to a dead
  # replica is refused at once and the request goes to the next one.
  upstream rasa {{
{servers(rasa)}
  }}
  # socket.io: a websocket is one connection, but the long-polling fallback
  # makes several requests that must reach the replica that holds the session.
  upstream rasa_sockets {{
    ip_hash;
{servers(rasa)}
  }}
  upstream actions {{
{servers(actions)}
  }}
  upstream console {{
{servers(consoles)}
  }}

  server {{
    listen 127.0.0.1:{config.entry_port};
    location / {{
      proxy_pass http://rasa;{proxy}
      proxy_read_timeout 120s;
    }}
    location /socket.io/ {{
      proxy_pass http://rasa_sockets;{proxy}
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }}
  }}
  server {{
    listen 127.0.0.1:{config.entry_port + 1};
    location / {{
      proxy_pass http://console;{proxy}
      proxy_read_timeout 120s;
    }}
  }}
  server {{
    listen 127.0.0.1:{config.entry_port + 2};
    location / {{
      proxy_pass http://actions;{proxy}
      proxy_read_timeout 120s;
    }}
  }}
}}
"""


class Cluster(ProcessGroup):
    """The processes of one cluster; `restart(name)` brings a killed one back."""

    def __init__(self, config: ClusterConfig) -> None:
        super().__init__(config.log_dir)
        self.config = config
        self._commands: dict[str, tuple[list[str], str]] = {}

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(self.config.env)
        env["ACTION_ENDPOINT_URL"] = self.config.action_entry_url
        env.setdefault("WEBCHAT_SESSION_KEY", webchat_session_key())
        env["RASA_AUTH_TOKEN"] = self.config.auth_token
        env["RASA_URL"] = self.config.entry_url
        # The action servers trust the conversation they are sent: loopback only.
        env["SANIC_HOST"] = "127.0.0.1"
        return env

    def _start(self, name: str, args: list[str], health: str) -> None:
        self._commands[name] = (args, health)
        self._spawn(name, args)

    def prepare(self) -> None:
        """Create and migrate the databases, and seed the demo debtors."""
        env = self._env()
        ensure_database(env["DATABASE_URL"])
        ensure_database(env["TRACKER_DB_URL"])
        subprocess.run(
            [sys.executable, "-m", "bot.store", "seed-demo"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        create_tracker_tables(env["TRACKER_DB_URL"])

    def start(self, timeout: float = 300.0) -> None:
        """Start every process and wait until each answers."""
        config = self.config
        if not config.model.exists():
            raise FileNotFoundError(f"{config.model} is missing: run 'make train' first")
        if not config.auth_token:
            raise ValueError("the consoles need the Rasa HTTP API: set auth_token")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise FileNotFoundError("nginx is missing: run .ci/install-packages")
        config.env.setdefault("CONSOLE_SECRET_KEY", secrets.token_urlsafe(32))
        # Staff reach the consoles through nginx on this host: its X-Forwarded-For counts.
        config.env.setdefault("CONSOLE_TRUSTED_PROXIES", "127.0.0.1")
        self.prepare()
        for directory in (config.log_dir, config.run_dir / "nginx-temp"):
            directory.mkdir(parents=True, exist_ok=True)
        conf = config.run_dir / "nginx.conf"
        conf.write_text(nginx_config(config), encoding="utf-8")
        self._start(
            "nginx",
            [
                nginx,
                "-p",
                str(config.run_dir),
                "-c",
                str(conf),
                "-e",
                str(config.log_dir / "nginx-error.log"),
                "-g",
                "daemon off;",
            ],
            "",
        )
        for i in range(config.action_replicas):
            port = config.action_port(i)
            self._start(
                f"actions-{i + 1}", action_server_args(port), f"http://127.0.0.1:{port}/health"
            )
        for i in range(config.rasa_replicas):
            args = rasa_server_args(
                config.model, config.rasa_port(i), SCALE_ENDPOINTS, config.auth_token
            )
            self._start(f"rasa-{i + 1}", args, f"{config.rasa_url(i)}/")
        for i in range(config.console_replicas):
            port = config.console_port(i)
            self._start(f"console-{i + 1}", console_args(port), f"http://127.0.0.1:{port}/health")
        if config.audit_relay:
            self._start("audit-relay", [sys.executable, "-m", "bot.store.audit_relay"], "")
        deadline = time.monotonic() + timeout
        for _, health in self._commands.values():
            if health:
                self._wait(health, deadline)
        self._wait(f"{config.entry_url}/", deadline)
        self._wait(f"{config.console_url}/health", deadline)

    def restart(self, name: str, timeout: float = 180.0) -> None:
        """Start a killed process again and wait until it answers."""
        args, health = self._commands[name]
        self._spawn(name, args)
        if health:
            self._wait(health, time.monotonic() + timeout)

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the assistant as a cluster until Ctrl-C.")
    parser.add_argument("--rasa", type=int, default=2, help="Rasa servers (N)")
    parser.add_argument("--actions", type=int, default=2, help="action servers (M)")
    parser.add_argument("--consoles", type=int, default=2, help="staff consoles")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", 8080)))
    args = parser.parse_args(argv)
    token = os.environ.get("RASA_AUTH_TOKEN", "") or secrets.token_urlsafe(24)
    try:
        config = ClusterConfig(
            rasa_replicas=args.rasa,
            action_replicas=args.actions,
            console_replicas=args.consoles,
            entry_port=args.port,
            auth_token=token,
        )
    except ValueError as error:
        parser.error(str(error))
    cluster = Cluster(config)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    print(
        f"Starting {args.rasa} Rasa servers, {args.actions} action servers, "
        f"{args.consoles} consoles, the audit relay and nginx (logs in {config.log_dir}) ...",
        flush=True,
    )
    try:
        cluster.start()
        from bot.console.__main__ import DEMO_USERNAME, reset_demo_user

        password = asyncio.run(reset_demo_user(config.env["DATABASE_URL"]))
        replicas = ", ".join(config.rasa_urls)
        print(
            f"\nThe cluster is running. Entry: {config.entry_url}\n"
            f"  REST channel:   POST {config.entry_url}/webhooks/rest/webhook\n"
            f"  Web chat page:  {config.entry_url}/webhooks/webchat/\n"
            f"  Staff console:  {config.console_url}/  user {DEMO_USERNAME}"
            f"  password {password} (new at every start; never logged)\n"
            f"  HTTP API token: {token}\n"
            f"  Rasa replicas:  {replicas}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while cluster.running():
            time.sleep(1)
        print(f"A process exited; see {config.log_dir}. Stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
