"""A stand-in for the WeChat servers, for the WeChat channel's tests.

`FakeWeChatApi` serves what the channel calls: `/cgi-bin/token` (counting the
calls; tokens can be made invalid or expired), `/cgi-bin/message/custom/send`
(keeping each user's messages; refused with 45015 for users whose 48-hour window
is closed) and `/cgi-bin/message/template/send` (keeping each user's template
messages; only the account's templates, with WeChat's field format).
`WeChatClient` plays WeChat pushing messages to the channel: it signs them (and
in safe mode encrypts them) with `wechatpy` exactly as WeChat does, and reads
the passive replies (checking the signature and decrypting them in safe mode).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import xmltodict
from aiohttp import web
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

#: The account the end-to-end stack is configured with (`conftest.rasa_url`).
FAKE_PORT = 15099
TOKEN = "e2e-wechat-token"
APP_ID = "wx0e2e0000000000aa"
APP_SECRET = "e2e-wechat-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_e2e_account"


def stack_env(port: int = FAKE_PORT) -> dict[str, str]:
    """The environment of a Rasa server that talks to the fake on `port` (safe mode)."""
    return {
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_AES_KEY": AES_KEY,
        "WECHAT_API_BASE": f"http://127.0.0.1:{port}",
    }


#: The template the end-to-end stack's reminders use.
TEMPLATE_ID = "e2e-reminder-template"


@dataclass
class SentMessage:
    openid: str
    content: str
    at: float


@dataclass
class TemplateMessage:
    openid: str
    template_id: str
    #: Field name -> value, as WeChat shows them (`{{first.DATA}}` …).
    data: dict[str, str]
    at: float


class FakeWeChatApi:
    """The WeChat server API as far as the channel uses it."""

    def __init__(self, app_id: str = APP_ID, app_secret: str = APP_SECRET) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_calls = 0
        self.send_calls = 0
        self.rejected_sends = 0
        self.valid_tokens: set[str] = set()
        #: Sends with a token WeChat no longer accepts get this errcode.
        self.invalid_token_errcode = 40001
        self.messages: dict[str, list[SentMessage]] = {}
        self.templates: dict[str, list[TemplateMessage]] = {}
        #: The templates the account has added (others: errcode 40037).
        self.template_ids: set[str] = {TEMPLATE_ID}
        #: Users who last wrote more than 48 hours ago: customer-service sends get 45015.
        self.window_closed: set[str] = set()
        #: Users who unfollowed the account: every send gets 43004.
        self.unsubscribed: set[str] = set()
        #: The next this many sends of any kind get errcode -1 (system busy).
        self.busy = 0
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- control -------------------------------------------------------------------------

    def expire_tokens(self, errcode: int = 40001) -> None:
        """Every token handed out so far is refused from now on with `errcode`."""
        self.valid_tokens.clear()
        self.invalid_token_errcode = errcode

    def sent_to(self, openid: str) -> list[str]:
        return [m.content for m in self.messages.get(openid, [])]

    def all_sent(self) -> list[SentMessage]:
        return [m for messages in self.messages.values() for m in messages]

    async def wait_for(self, openid: str, count: int, timeout: float = 20.0) -> list[str]:
        """The messages sent to `openid` once there are at least `count` of them.

        Polls, so that it works when the fake serves from another thread's loop.
        """
        deadline = time.monotonic() + timeout
        while len(self.messages.get(openid, [])) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{openid} got {self.sent_to(openid)} instead of {count} messages"
                )
            await asyncio.sleep(0.05)
        return self.sent_to(openid)

    # --- the server --------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        query = request.query
        if query.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if query.get("appid") != self.app_id or query.get("secret") != self.app_secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"TOKEN-{next(self._counter)}-{secrets.token_hex(8)}"
        self.valid_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        self.send_calls += 1
        token = request.query.get("access_token", "")
        if token not in self.valid_tokens:
            self.rejected_sends += 1
            return web.json_response(
                {"errcode": self.invalid_token_errcode, "errmsg": "invalid credential"}
            )
        try:
            body = await request.json()
            openid = body["touser"]
            assert body["msgtype"] == "text"
            content = body["text"]["content"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return web.json_response({"errcode": 44002, "errmsg": "bad body"})
        if len(content.encode("utf-8")) > 2048:
            return web.json_response({"errcode": 45002, "errmsg": "content size out of limit"})
        refused = self._refusal(openid)
        if refused is None and openid in self.window_closed:
            refused = {"errcode": 45015, "errmsg": "response out of time limit"}
        if refused is not None:
            return web.json_response(refused)
        self.messages.setdefault(openid, []).append(SentMessage(openid, content, time.time()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _refusal(self, openid: str) -> dict[str, Any] | None:
        if self.busy > 0:
            self.busy -= 1
            return {"errcode": -1, "errmsg": "system error"}
        if openid in self.unsubscribed:
            return {"errcode": 43004, "errmsg": "require subscribe"}
        return None

    async def _send_template(self, request: web.Request) -> web.Response:
        self.send_calls += 1
        if request.query.get("access_token", "") not in self.valid_tokens:
            self.rejected_sends += 1
            return web.json_response(
                {"errcode": self.invalid_token_errcode, "errmsg": "invalid credential"}
            )
        try:
            body = await request.json()
            openid, template_id = body["touser"], body["template_id"]
            data = {name: field["value"] for name, field in body["data"].items()}
            assert isinstance(openid, str) and all(isinstance(v, str) for v in data.values())
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError):
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        if template_id not in self.template_ids:
            return web.json_response({"errcode": 40037, "errmsg": "invalid template_id"})
        refused = self._refusal(openid)
        if refused is not None:
            return web.json_response(refused)
        self.templates.setdefault(openid, []).append(
            TemplateMessage(openid, template_id, data, time.time())
        )
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._counter)})

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_post("/cgi-bin/message/template/send", self._send_template)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        actual = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://127.0.0.1:{actual}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class FakeInThread:
    """A `FakeWeChatApi` served by its own event loop in a thread (for session fixtures)."""

    def __init__(self, fake: FakeWeChatApi, port: int) -> None:
        self.fake = fake
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeWeChatApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(self.port), self._loop).result(10)
        return self.fake

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# --- WeChat pushing messages ---------------------------------------------------------------


def _xml(fields: dict[str, Any]) -> str:
    nodes = []
    for name, value in fields.items():
        if isinstance(value, int):
            nodes.append(f"<{name}>{value}</{name}>")
        else:
            nodes.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(nodes) + "</xml>"


def new_msg_id() -> int:
    return secrets.randbits(62) + 1


def new_openid() -> str:
    return "o" + uuid.uuid4().hex[:27]


def text_message(openid: str, content: str, msg_id: int | None = None) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "text",
        "Content": content,
        "MsgId": msg_id or new_msg_id(),
    }


def voice_message(openid: str, recognition: str, msg_id: int | None = None) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "voice",
        "MediaId": "media-" + uuid.uuid4().hex,
        "Format": "amr",
        "Recognition": recognition,
        "MsgId": msg_id or new_msg_id(),
    }


def image_message(openid: str) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "image",
        "PicUrl": "http://example.invalid/a.jpg",
        "MediaId": "media-" + uuid.uuid4().hex,
        "MsgId": new_msg_id(),
    }


def location_message(openid: str) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "location",
        "Location_X": "39.9",
        "Location_Y": "116.4",
        "Scale": 15,
        "Label": "北京",
        "MsgId": new_msg_id(),
    }


def event(openid: str, name: str, create_time: int | None = None) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": create_time or int(time.time()),
        "MsgType": "event",
        "Event": name,
    }


@dataclass
class Reply:
    """The channel's answer to one push."""

    status: int
    body: str
    #: The passive reply's text; None for `success`, an empty body or an error.
    content: str | None = None
    elapsed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)


#: How a request reaches the channel: (method, query, body) -> (status, text).
Transport = Callable[[str, dict[str, str], bytes], Awaitable[tuple[int, str]]]


def http_transport(session: aiohttp.ClientSession, url: str) -> Transport:
    async def send(method: str, query: dict[str, str], body: bytes) -> tuple[int, str]:
        async with session.request(
            method,
            url,
            params=query,
            data=body if method == "POST" else None,
            headers={"Content-Type": "text/xml"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            return response.status, await response.text()

    return send


class WeChatClient:
    """WeChat's side of the webhook: signs, encrypts, posts and reads the passive replies."""

    def __init__(
        self,
        transport: Transport,
        token: str = TOKEN,
        app_id: str = APP_ID,
        aes_key: str | None = AES_KEY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.token = token
        self.app_id = app_id
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
        self.clock = clock

    def signature(self, timestamp: str, nonce: str, *extra: str) -> str:
        signer = WeChatSigner()
        signer.add_data(self.token, timestamp, nonce, *extra)
        return str(signer.signature)

    def signed_query(self, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(self.clock()))
        nonce = str(secrets.randbelow(10**9))
        return {"signature": self.signature(stamp, nonce), "timestamp": stamp, "nonce": nonce}

    async def verify(self, echostr: str, query: dict[str, str] | None = None) -> Reply:
        query = {**(query if query is not None else self.signed_query()), "echostr": echostr}
        status, body = await self.transport("GET", query, b"")
        return Reply(status, body)

    def encode(
        self, fields: dict[str, Any], query: dict[str, str] | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat would post for a message with these fields."""
        query = dict(query if query is not None else self.signed_query())
        query["openid"] = str(fields.get("FromUserName", ""))
        plain = _xml(fields)
        if self.crypto is None:
            return query, plain.encode("utf-8")
        envelope = xmltodict.parse(
            self.crypto.encrypt_message(plain, query["nonce"], query["timestamp"])
        )["xml"]
        query["encrypt_type"] = "aes"
        query["msg_signature"] = envelope["MsgSignature"]
        body = _xml(
            {"ToUserName": fields.get("ToUserName", ACCOUNT), "Encrypt": envelope["Encrypt"]}
        )
        return query, body.encode("utf-8")

    async def post_raw(self, query: dict[str, str], body: bytes) -> Reply:
        started = time.monotonic()
        status, text = await self.transport("POST", query, body)
        reply = Reply(status, text, elapsed=time.monotonic() - started)
        if status == 200 and text.strip() and text.strip() != "success":
            reply.fields = self.read_reply(text)
            reply.content = reply.fields.get("Content")
        return reply

    async def push(self, fields: dict[str, Any], query: dict[str, str] | None = None) -> Reply:
        """Push one message as WeChat does; the channel's answer."""
        query, body = self.encode(fields, query)
        return await self.post_raw(query, body)

    def read_reply(self, text: str) -> dict[str, Any]:
        """The fields of a passive reply (checked and decrypted in safe mode)."""
        outer: dict[str, Any] = xmltodict.parse(text)["xml"]
        if self.crypto is None:
            return outer
        expected = self.signature(str(outer["TimeStamp"]), str(outer["Nonce"]), outer["Encrypt"])
        assert outer["MsgSignature"] == expected, "the passive reply's signature is wrong"
        plain = self.crypto.decrypt_message(
            {"Encrypt": outer["Encrypt"]}, expected, str(outer["TimeStamp"]), str(outer["Nonce"])
        )
        inner: dict[str, Any] = xmltodict.parse(plain)["xml"]
        return inner
