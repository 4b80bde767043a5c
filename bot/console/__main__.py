"""Command line of the staff console.

    python -m bot.console [serve] [--demo-user] [--host H] [--port P]
    python -m bot.console user add USERNAME --name 显示名 --role negotiator|supervisor
    python -m bot.console user deactivate USERNAME

`serve` reads `DATABASE_URL`, `RASA_URL` (default http://127.0.0.1:5005; an
internal address, never the public entry), `RASA_JWT_SECRET` (the Rasa servers'
`--jwt-secret`), `CONSOLE_SECRET_KEY`, `CONSOLE_HOST` (default 127.0.0.1),
`CONSOLE_PORT` (default 5080), `CONSOLE_SECURE_COOKIES` (default 1: cookies
only over HTTPS; 0 for development over plain HTTP) and `PAYMENT_PUSH_CLIENTS`
(the systems that may push payments, `bot.console.payment_push`). `user add` reads the
password from the terminal twice, or from `CONSOLE_USER_PASSWORD` when that is set.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from bot.console.client_address import TRUSTED_PROXIES_VARIABLE, parse_trusted_proxies
from bot.console.payment_push import PaymentPush
from bot.console.texts import staff_error
from bot.domain.vocabulary import STAFF_ROLES
from bot.profile import require_shared
from bot.store import staff
from bot.store.engine import Database, database_url
from bot.store.staff import StaffInputError

BAD_INPUT = 2
DEMO_USERNAME = "demo"
DEMO_DISPLAY_NAME = "演示主管"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.console", description="协商工作台")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="启动工作台（默认）")
    serve.add_argument("--host", default=os.environ.get("CONSOLE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=None, help="默认 $CONSOLE_PORT 或 5080")
    serve.add_argument(
        "--demo-user",
        action="store_true",
        help="创建（或重置）演示主管 demo，并打印其随机密码",
    )
    user = commands.add_parser("user", help="管理工作人员账号")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="新建账号")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="显示名")
    add.add_argument("--role", required=True, choices=STAFF_ROLES)
    deactivate = user_commands.add_parser("deactivate", help="停用账号（下一次请求起失效）")
    deactivate.add_argument("username")
    return parser


def _error(message: str) -> None:
    print(f"错误：{message}", file=sys.stderr)


def _read_password() -> str | None:
    from_env = os.environ.get("CONSOLE_USER_PASSWORD")
    if from_env is not None:
        return from_env
    first = getpass.getpass("密码：")
    second = getpass.getpass("再次输入密码：")
    if first != second:
        _error("两次输入的密码不一致")
        return None
    return first


async def _add_user(url: str, username: str, name: str, role: str, password: str) -> None:
    db = Database(url)
    try:
        await staff.create_staff(db, username, name, password, role)
    finally:
        await db.dispose()


async def _deactivate(url: str, username: str) -> bool:
    db = Database(url)
    try:
        return await staff.set_active(db, username, False)
    finally:
        await db.dispose()


async def reset_demo_user(url: str) -> str:
    """A new random password for the demo supervisor, created if absent."""
    password = secrets.token_urlsafe(12)
    db = Database(url)
    try:
        if await staff.get_staff_by_username(db, DEMO_USERNAME) is None:
            await staff.create_staff(db, DEMO_USERNAME, DEMO_DISPLAY_NAME, password, "supervisor")
        else:
            await staff.set_password(db, DEMO_USERNAME, password)
    finally:
        await db.dispose()
    return password


def _user(args: argparse.Namespace, url: str) -> int:
    try:
        if args.user_command == "add":
            staff.validate_username(args.username)
            password = _read_password()
            if password is None:
                return BAD_INPUT
            asyncio.run(_add_user(url, args.username, args.name, args.role, password))
            print(f"已创建账号 {args.username}（{args.role}）")
            return 0
        if not asyncio.run(_deactivate(url, args.username)):
            _error(f"用户名 {args.username} 不存在")
            return BAD_INPUT
        print(f"已停用账号 {args.username}")
        return 0
    except StaffInputError as error:
        _error(staff_error(error))
        return BAD_INPUT
    except ValueError as error:
        _error(str(error))
        return BAD_INPUT
    except DBAPIError as error:
        _error(f"无法写入数据库（是否已运行 python -m bot.store upgrade？）：{error.orig}")
        return 1


def _secret_key() -> bytes:
    key = require_shared("CONSOLE_SECRET_KEY")
    if key:
        if len(key.encode()) < 16:
            raise ValueError("CONSOLE_SECRET_KEY 至少需要 16 个字符")
        return key.encode()
    print(
        "警告：未设置 CONSOLE_SECRET_KEY，已随机生成；工作台重启后所有人需重新登录。",
        file=sys.stderr,
    )
    return secrets.token_bytes(32)


def _serve(args: argparse.Namespace, url: str) -> int:
    from aiohttp import web

    from bot.console.app import create_app
    from bot.console.sessions import secure_cookies_setting

    try:
        port = args.port if args.port is not None else int(os.environ.get("CONSOLE_PORT", "5080"))
        secret_key = _secret_key()
        secure_cookies = secure_cookies_setting(os.environ.get("CONSOLE_SECURE_COOKIES"))
        # A bad list of trusted proxies stops the console here, not at the first sign-in.
        parse_trusted_proxies(os.environ.get(TRUSTED_PROXIES_VARIABLE, ""))
        # So does a bad list of systems that push payments.
        PaymentPush.from_env()
    except ValueError as error:
        _error(str(error))
        return BAD_INPUT
    host = args.host
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.demo_user:
        try:
            password = asyncio.run(reset_demo_user(url))
        except DBAPIError as error:
            _error(f"无法写入数据库（是否已运行 python -m bot.store upgrade？）：{error.orig}")
            return 1
        print(
            f"Staff console: http://{host}:{port}/  user {DEMO_USERNAME}  password {password}",
            flush=True,
        )
    app = create_app(
        Database(url),
        rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005"),
        rasa_token=os.environ.get("RASA_JWT_SECRET", ""),
        secret_key=secret_key,
        secure_cookies=secure_cookies,
    )
    web.run_app(app, host=host, port=port, print=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0].startswith("-") and arguments[0] not in ("-h", "--help"):
        arguments.insert(0, "serve")
    args = _parser().parse_args(arguments)
    url = database_url()
    if args.command == "user":
        return _user(args, url)
    return _serve(args, url)


if __name__ == "__main__":
    raise SystemExit(main())
