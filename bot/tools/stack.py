"""Start and stop the action server and the Rasa server together.

`make run` uses this module in the foreground; the end-to-end tests and
`make bench` use the same `Stack` so that what is tested is what is run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass
class StackConfig:
    """Ports, model and token of one running stack."""

    rasa_port: int = 5005
    action_port: int = 5055
    model: Path = ROOT / "models" / "current.tar.gz"
    auth_token: str = ""
    #: Rasa's `--jwt-secret`: the console signs its API calls with it (`Authorization`
    #: header, never the URL). `auth_token` stays for clients on loopback that send `?token=`.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    log_dir: Path = ROOT / "var" / "log"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Also start the staff console on this port (it needs `jwt_secret`).
    console_port: int | None = None

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}/webhook"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"


def secret_file(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """The secret kept in `path`, made on first use: readable by this user only.

    The file is created with mode 0600 (never readable by others, not even
    for a moment), and only if it does not exist; when another process is
    writing it at the same moment, its secret is waited for and read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(make())
    deadline = time.monotonic() + 5
    while not (secret := path.read_text(encoding="utf-8").strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} is empty: delete it to have a new secret made")
        time.sleep(0.05)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return secret


def webchat_session_key(path: Path | None = None) -> str:
    """The key that signs web chat session tokens, kept in `var/` across restarts."""
    return secret_file(path or ROOT / "var" / "webchat-session.key")


def rest_integrators() -> str:
    """`REST_INTEGRATORS` for the clusters this machine runs and their clients.

    The environment's, else one integrator, `local`, whose secret is kept in
    `var/` (so that `make cluster`, its tests and `make bench` sign alike).
    """
    configured = os.environ.get("REST_INTEGRATORS", "").strip()
    return configured or f"local:{secret_file(ROOT / 'var' / 'rest-integrator.key')}"


class ProcessGroup:
    """Child processes started together, each in its own process group, with logs."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (ROOT / "var").mkdir(exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env if env is not None else self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._processes.append((name, process))

    def running(self) -> bool:
        """Whether every process started is still running."""
        return all(process.poll() is None for _, process in self._processes)

    def started(self, name: str) -> bool:
        """Whether a process of this name was started and not killed or stopped since."""
        return any(entry_name == name for entry_name, _ in self._processes)

    def kill(self, name: str) -> None:
        """Kill one process by name at once (SIGKILL), as a crash would."""
        for entry in list(self._processes):
            if entry[0] == name:
                os.killpg(entry[1].pid, signal.SIGKILL)
                entry[1].wait()
                self._processes.remove(entry)

    def _wait(self, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}; "
                        f"see {self.log_dir / (name + '.log')}"
                    )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{url} did not answer in time")

    def stop(self) -> None:
        """Stop every process started (SIGTERM, then SIGKILL), the last started first."""
        for _, process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()


def rasa_server_args(
    model: Path, port: int, endpoints: str, auth_token: str = "", jwt_secret: str = ""
) -> list[str]:
    """The command line of one Rasa server on loopback.

    The HTTP API is on when either credential is given: `jwt_secret` for tokens
    in the `Authorization` header (HS256), `auth_token` for `?token=`.
    """
    args = [
        str(VENV_BIN / "rasa"),
        "run",
        "--model",
        str(model),
        "--port",
        str(port),
        "--interface",
        "127.0.0.1",
        "--credentials",
        "credentials.yml",
        "--endpoints",
        endpoints,
        "--cors",
        "*",
    ]
    if auth_token or jwt_secret:
        args.append("--enable-api")
    # `--flag=value`: a random secret may begin with "-", which argparse would take
    # for an option of its own ("expected one argument").
    if auth_token:
        args.append(f"--auth-token={auth_token}")
    if jwt_secret:
        args += [f"--jwt-secret={jwt_secret}", "--jwt-method", "HS256"]
    return args


def action_server_args(port: int) -> list[str]:
    """The command line of one action server."""
    return [str(VENV_BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(port)]


def console_args(port: int) -> list[str]:
    """The command line of one staff console."""
    return [sys.executable, "-m", "bot.console", "serve", "--port", str(port)]


class Stack(ProcessGroup):
    """The action server and the Rasa server as child processes."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config.log_dir)
        self.config = config

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(self.config.extra_env)
        env["ACTION_ENDPOINT_URL"] = self.config.action_url
        env.setdefault("TRACKER_DB", str(ROOT / "var" / "tracker.db"))
        env.setdefault("WEBCHAT_SESSION_KEY", webchat_session_key())
        return env

    def start(self, timeout: float = 180.0) -> None:
        """Start both servers and wait until they answer."""
        if not self.config.model.exists():
            raise FileNotFoundError(f"{self.config.model} is missing: run 'make train' first")
        # The action server trusts the conversation it is sent: only the Rasa
        # server on this machine may reach it.
        self.config.extra_env.setdefault("SANIC_HOST", "127.0.0.1")
        self._spawn_actions()
        server = rasa_server_args(
            self.config.model,
            self.config.rasa_port,
            "endpoints.yml",
            self.config.auth_token,
            self.config.jwt_secret,
        )
        self._spawn("rasa", server)
        deadline = time.monotonic() + timeout
        if self.config.console_port is not None:
            self._spawn_console()
        self._wait(f"http://127.0.0.1:{self.config.action_port}/health", deadline)
        self._wait(f"{self.config.rasa_url}/", deadline)
        if self.config.console_port is not None:
            self._wait(f"{self.config.console_url}/health", deadline)

    def _spawn_console(self) -> None:
        if not self.config.jwt_secret:
            raise ValueError("the staff console needs the Rasa HTTP API: set jwt_secret")
        self.config.extra_env.update(
            RASA_URL=self.config.rasa_url, RASA_JWT_SECRET=self.config.jwt_secret
        )
        self.config.extra_env.setdefault("CONSOLE_SECRET_KEY", secrets.token_urlsafe(32))
        # The console is reached over plain HTTP on loopback: no Secure-only cookie.
        self.config.extra_env.setdefault("CONSOLE_SECURE_COOKIES", "0")
        assert self.config.console_port is not None
        self._spawn("console", console_args(self.config.console_port))

    def _spawn_actions(self) -> None:
        self._spawn("actions", action_server_args(self.config.action_port))

    def restart_actions(self, timeout: float = 120.0) -> None:
        """Start the action server again (after `kill("actions")`) and wait for it."""
        self._spawn_actions()
        deadline = time.monotonic() + timeout
        self._wait(f"http://127.0.0.1:{self.config.action_port}/health", deadline)

    def restart(self, timeout: float = 180.0) -> None:
        """Stop every server as `stop` does (each has exited on return), then start them again.

        Same ports, same environment (tracker database, application database,
        keys): only what the servers stored survives.
        """
        self.stop()
        self.start(timeout)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the assistant until Ctrl-C.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    parser.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_PORT", 5055)))
    parser.add_argument(
        "--console-port", type=int, default=int(os.environ.get("CONSOLE_PORT", 5080))
    )
    args = parser.parse_args(argv)

    token = os.environ.get("RASA_AUTH_TOKEN", "")
    generated = not token
    if generated:
        token = secrets.token_urlsafe(24)
    config = StackConfig(
        rasa_port=args.port,
        action_port=args.action_port,
        auth_token=token,
        console_port=args.console_port,
    )
    # The console's calls to the HTTP API are signed with this (generated unless set).
    config.jwt_secret = os.environ.get("RASA_JWT_SECRET", "") or config.jwt_secret
    stack = Stack(config)
    # The demo supervisor gets a new password now, shown here only (not in a log file).
    from bot.console.__main__ import DEMO_USERNAME, reset_demo_user
    from bot.store.engine import database_url

    demo_password = asyncio.run(reset_demo_user(database_url()))
    # `kill` (SIGTERM) stops the children too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    print(
        "Starting the action server, the Rasa server and the staff console (logs in var/log/) ...",
        flush=True,
    )
    try:
        stack.start()
        print(
            f"\nThe assistant is running at {config.rasa_url}\n"
            f"  Chat in a terminal:  make shell\n"
            f"  REST channel:        POST {config.rasa_url}/webhooks/rest/webhook "
            '{"sender": "me", "message": "你好"}\n'
            f"  Web chat page:       {config.rasa_url}/webhooks/webchat/\n"
            f"  socket.io channel:   {config.rasa_url}/socket.io\n"
            f"  HTTP API token:      {token}"
            + (" (generated; set RASA_AUTH_TOKEN to choose one)" if generated else "")
            + f"\n  Staff console:       {config.console_url}/  user {DEMO_USERNAME}"
            f"  password {demo_password} (new at every start; never logged)"
            + "\nPress Ctrl-C to stop.",
            flush=True,
        )
        while stack.running():
            time.sleep(1)
        print("A server exited; see var/log/. Stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
