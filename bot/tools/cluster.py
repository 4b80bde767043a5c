"""Several Rasa servers and action servers behind nginx, on the scale profile.

`make cluster N=2 M=2` runs this module: N Rasa servers, M action servers, two
staff consoles and the audit relay, each a process on loopback, behind one nginx
(Debian's package) that spreads requests over the replicas:

| nginx port   | upstream                                                     |
|--------------|--------------------------------------------------------------|
| entry (8080) | public: the Rasa servers' `/webhooks/` (REST, WeChat, web     |
|              | chat page) and `/socket.io/`; anything else 404              |
| entry + 1    | the staff consoles                                           |
| entry + 2    | the action servers (for the Rasa servers; loopback only)     |
| entry + 3    | the Rasa servers' HTTP API, for the consoles (internal)      |

The HTTP API (`/conversations/...`, `/model/...`) is never on the public door:
the consoles reach it on entry + 3 with a short-lived JWT in the
`Authorization` header (`--jwt-secret`, `RASA_JWT_SECRET`), and nginx logs
`$request_method $uri`, never a query string.

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
from pathlib import Path
from typing import Any

from bot.tools.cluster_config import (
    SCALE_ENDPOINTS,
    ClusterConfig,
    _sync_postgres_url,
    scale_env,
)
from bot.tools.cluster_nginx import nginx_config
from bot.tools.stack import (
    ROOT,
    ProcessGroup,
    action_server_args,
    console_args,
    rasa_server_args,
    rest_integrators,
    secret_file,
    stop_on_sigterm,
    webchat_session_key,
)

__all__ = [
    "SCALE_ENDPOINTS",
    "Cluster",
    "ClusterConfig",
    "create_tracker_tables",
    "delete_queue",
    "drop_database",
    "ensure_database",
    "main",
    "nginx_config",
    "scale_env",
    "verification_key",
]


def verification_key() -> str:
    """`VERIFICATION_KEY` for the clusters this machine runs: the environment's, else
    the key file of the development profile (`var/verification.key`), made on first use."""
    from bot.store.verification_progress import DEFAULT_KEY_FILE, KEY_VARIABLE, new_key

    configured = os.environ.get(KEY_VARIABLE, "").strip()
    return configured or secret_file(DEFAULT_KEY_FILE, make=new_key)


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
        env.setdefault("REST_INTEGRATORS", rest_integrators())  # REST takes signed requests only
        # Seals what a debtor typed to verify, on every action server alike.
        env.setdefault("VERIFICATION_KEY", verification_key())
        env.pop("RASA_AUTH_TOKEN", None)
        env["RASA_JWT_SECRET"] = self.config.jwt_secret
        # The consoles reach the HTTP API on nginx's internal port, not the public door.
        env["RASA_URL"] = self.config.rasa_api_url
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
        if not config.jwt_secret:
            raise ValueError("the consoles need the Rasa HTTP API: set jwt_secret")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise FileNotFoundError("nginx is missing: run .ci/install-packages")
        config.env.setdefault("CONSOLE_SECRET_KEY", secrets.token_urlsafe(32))
        config.env.setdefault("CONSOLE_SECURE_COOKIES", "0")  # plain HTTP on this host
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
            # JWT only: no `?token=` is accepted, so none ends up in a URL.
            args = rasa_server_args(
                config.model, config.rasa_port(i), SCALE_ENDPOINTS, jwt_secret=config.jwt_secret
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
        self._wait(f"{config.entry_url}/webhooks/rest/", deadline)
        self._wait(f"{config.rasa_api_url}/", deadline)
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


def running_banner(config: ClusterConfig, username: str, password: str, jwt_source: object) -> str:
    """What `make cluster` prints once up: where everything is, and which secret signs the API."""
    replicas = ", ".join(config.rasa_urls)
    return (
        f"\nThe cluster is running. Entry: {config.entry_url}\n"
        f"  REST channel:   POST {config.entry_url}/webhooks/rest/webhook (signed)\n"
        f"  Web chat page:  {config.entry_url}/webhooks/webchat/\n"
        f"  Staff console:  {config.console_url}/  user {username}"
        f"  password {password} (new at every start; never logged)\n"
        f"  HTTP API:       {config.rasa_api_url} (internal), Authorization: Bearer "
        f"<HS256 JWT signed with the secret in {jwt_source}>\n"
        f"  Rasa replicas:  {replicas}\n"
        "Press Ctrl-C to stop."
    )


#: The secret the consoles sign Rasa API tokens with, unless `RASA_JWT_SECRET` is set.
JWT_SECRET_FILE = ROOT / "var" / "rasa-jwt.key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the assistant as a cluster until Ctrl-C.")
    parser.add_argument("--rasa", type=int, default=2, help="Rasa servers (N)")
    parser.add_argument("--actions", type=int, default=2, help="action servers (M)")
    parser.add_argument("--consoles", type=int, default=2, help="staff consoles")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", 8080)))
    args = parser.parse_args(argv)
    jwt_secret = os.environ.get("RASA_JWT_SECRET", "") or secret_file(JWT_SECRET_FILE)
    try:
        config = ClusterConfig(
            rasa_replicas=args.rasa,
            action_replicas=args.actions,
            console_replicas=args.consoles,
            entry_port=args.port,
            jwt_secret=jwt_secret,
        )
    except ValueError as error:
        parser.error(str(error))
    cluster = Cluster(config)
    # The secret itself is never printed: a terminal's scrollback and CI logs keep it.
    jwt_source = "RASA_JWT_SECRET" if os.environ.get("RASA_JWT_SECRET") else JWT_SECRET_FILE
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
        print(running_banner(config, DEMO_USERNAME, password, jwt_source), flush=True)
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
