"""The web chat page's channel: static files only, nothing outside its folder.

The channel's blueprint runs in a real Sanic server on a free port and is
asked with raw HTTP request lines, so that `..`, `%2e%2e` and the like reach
the server exactly as written. Also: the staff replies a page missed, asked
for with its token in the body; the page's HTML (no inline script, no
external URL); the message formatter in `bot/webchat/public/format.js` and
what the page keeps on the device (`privacy.js`), run with Node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.channels.channel import register
from rasa.shared.core.events import BotUttered
from sanic import Sanic

from bot.rasa_ext.channels.webchat import PUBLIC, WebChatPage, resolve
from bot.rasa_ext.channels.webchat_session import SessionTokens, session_ids

SECRET = "top secret, outside the served folder"
SESSION_KEY = "w" * 32


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int

    async def request(
        self, path: str, method: str = "GET", headers: str = "", body: bytes = b""
    ) -> Answer:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if body:
            headers += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n".encode()
            + body
        )
        await writer.drain()
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        return Answer(int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A served folder, next to a file that must never be served."""
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    (tmp_path / "secret.js").write_text(f"// {SECRET}", encoding="utf-8")
    root = tmp_path / "public"
    (root / "vendor").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>页</title>", encoding="utf-8")
    (root / "app.js").write_text("export const a = 1;", encoding="utf-8")
    (root / "style.css").write_text("body{}", encoding="utf-8")
    (root / "vendor" / "lib.js").write_text("export {};", encoding="utf-8")
    (root / ".env").write_text(SECRET, encoding="utf-8")
    (root / "notes.py").write_text(SECRET, encoding="utf-8")
    (root / "outside.js").symlink_to(tmp_path / "secret.js")
    return root


class Conversations:
    """Rasa's tracker store as the channel reads it: each conversation's staff replies."""

    def __init__(self) -> None:
        self.staff: dict[str, list[BotUttered]] = {}

    async def retrieve(self, sender_id: str) -> Any:
        events = self.staff.get(sender_id)
        return SimpleNamespace(events=events) if events else None


async def _serve(
    root: Path, monkeypatch: pytest.MonkeyPatch, conversations: Conversations | None = None
) -> AsyncIterator[Server]:
    # Sanic rewrites some of its methods at the first start; in test mode it
    # keeps the originals, so that another app can start in the same process.
    monkeypatch.setattr(Sanic, "test_mode", True)
    app = Sanic(f"webchat_test_{uuid.uuid4().hex[:8]}")
    app.ctx.agent = SimpleNamespace(tracker_store=conversations or Conversations())
    register([WebChatPage(root)], app, "/webhooks/")
    # A socket bound to a free port (Sanic takes `port=0` for its default, 8000).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    try:
        yield Server(sock.getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def server(site: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    async for running in _serve(site, monkeypatch):
        yield running


# --- what is served ---------------------------------------------------------------------------


async def test_the_page_is_served_as_html_and_revalidated(server: Server) -> None:
    answer = await server.request("/webhooks/webchat/")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.body.decode() == "<!doctype html><title>页</title>"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "connect-src 'self'" in policy
    assert (await server.request("/webhooks/webchat/index.html")).body == answer.body


async def test_without_the_slash_the_page_redirects_to_it(server: Server) -> None:
    answer = await server.request("/webhooks/webchat")
    assert answer.status == 301
    assert answer.headers["location"] == "webchat/"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("vendor/lib.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
async def test_assets_have_their_content_type_and_may_be_cached(
    server: Server, site: Path, path: str, content_type: str
) -> None:
    answer = await server.request(f"/webhooks/webchat/{path}")
    assert answer.status == 200
    assert answer.headers["content-type"] == content_type
    assert answer.headers["cache-control"] == "public, max-age=3600"
    assert answer.body == (site / path).read_bytes()


async def test_an_unchanged_file_is_answered_with_304(server: Server) -> None:
    first = await server.request("/webhooks/webchat/app.js")
    etag = first.headers["etag"]
    again = await server.request("/webhooks/webchat/app.js", headers=f"If-None-Match: {etag}\r\n")
    assert again.status == 304
    assert again.body == b""


async def test_head_gives_the_headers_without_the_body(server: Server, site: Path) -> None:
    answer = await server.request("/webhooks/webchat/app.js", method="HEAD")
    assert answer.status == 200
    assert answer.headers["content-length"] == str((site / "app.js").stat().st_size)
    assert answer.body == b""


@pytest.mark.parametrize(
    "path",
    ["missing.js", "vendor/missing.js", "vendor", "vendor/", "index.htm", ".env", "notes.py"],
)
async def test_missing_hidden_and_unknown_files_are_404(server: Server, path: str) -> None:
    answer = await server.request(f"/webhooks/webchat/{path}")
    assert answer.status == 404
    assert SECRET.encode() not in answer.body


TRAVERSALS = [
    "../secret.txt",
    "vendor/../../secret.txt",
    "../../../../../../etc/passwd",
    "%2e%2e/secret.txt",
    "%2E%2E/secret.txt",
    "vendor/%2e%2e/%2e%2e/secret.txt",
    "%2e%2e%2fsecret.txt",
    "..%2fsecret.txt",
    "%252e%252e/secret.txt",
    "..%5csecret.txt",
    "..\\secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "//etc/passwd",
    "%2F" + str(Path(__file__).resolve()).lstrip("/").replace("/", "%2F"),
    "app.js%00.html",
    "outside.js",
    "./app.js/../../secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_nothing_outside_the_folder_is_served(server: Server, path: str) -> None:
    answer = await server.request(f"/webhooks/webchat/{path}")
    assert answer.status in (400, 404), (path, answer.status)
    assert SECRET.encode() not in answer.body


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "%2e%2e/secret.txt", "/etc/passwd", "//etc/passwd", "a\\..\\..\\secret.txt"],
)
def test_resolve_refuses_paths_that_leave_the_folder(site: Path, path: str) -> None:
    assert resolve(site, path) is None


def test_resolve_finds_files_inside_the_folder(site: Path) -> None:
    assert resolve(site, "vendor/lib.js") == (site / "vendor" / "lib.js").resolve()
    assert resolve(site, "vendor//lib.js") == (site / "vendor" / "lib.js").resolve()
    assert resolve(site, str(site / "app.js")) is None  # absolute
    assert resolve(site, "outside.js") is None  # a link out of the folder


async def test_without_the_npm_files_the_page_says_how_to_install_them(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(site / "vendor")
    (site / "index.html").unlink()
    async for server in _serve(site, monkeypatch):
        answer = await server.request("/webhooks/webchat/")
        assert answer.status == 503
        assert "npm ci --prefix bot/webchat" in answer.body.decode()


def test_the_channel_accepts_no_messages_and_has_its_name() -> None:
    channel = WebChatPage.from_credentials(None)
    assert isinstance(channel, WebChatPage)
    assert channel.name() == "webchat"
    assert channel.root == PUBLIC
    assert WebChatPage.from_credentials({"root": "/srv/page"}).root == Path("/srv/page")  # type: ignore[attr-defined]


# --- staff replies the page missed ------------------------------------------------------------


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionTokens]:
    """The server's session tokens (its key from the environment)."""
    monkeypatch.setenv("WEBCHAT_SESSION_KEY", SESSION_KEY)
    session_ids.cache_clear()
    yield session_ids()
    session_ids.cache_clear()


async def _missed(server: Server, body: object) -> Answer:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return await server.request("/webhooks/webchat/staff_messages", "POST", body=data)


async def test_the_page_gets_its_missed_staff_replies_with_its_token(
    site: Path, monkeypatch: pytest.MonkeyPatch, tokens: SessionTokens
) -> None:
    token = tokens.issue()
    session = tokens.read(token)
    assert session is not None
    conversations = Conversations()
    conversations.staff[session.conversation_id] = [
        BotUttered("您好，我是李专员", metadata={"staff": "李专员"}, timestamp=100.0),
        BotUttered("智能助手的回复", timestamp=101.0),
        BotUttered("明天上午给您答复", metadata={"staff": "李专员"}, timestamp=102.0),
    ]
    async for server in _serve(site, monkeypatch, conversations):
        answer = await _missed(server, {"session_id": token, "after": 100.0})
        assert answer.status == 200
        assert answer.headers["cache-control"] == "no-store"
        assert json.loads(answer.body) == [
            {"text": "明天上午给您答复", "staff": "李专员", "timestamp": 102.0}
        ]
        assert len(json.loads((await _missed(server, {"session_id": token})).body)) == 2


async def test_an_expired_or_stolen_id_gets_no_staff_replies(
    site: Path, monkeypatch: pytest.MonkeyPatch, tokens: SessionTokens
) -> None:
    yesterday = SessionTokens(SESSION_KEY.encode(), clock=lambda: time.time() - 25 * 3600)
    expired = yesterday.issue()
    then = yesterday.read(expired)
    assert then is not None and tokens.read(expired) is None  # signed well, 25 hours old
    stolen = tokens.read(tokens.issue())
    assert stolen is not None
    forged = SessionTokens(b"not the server's key, 32 bytes..").issue()
    conversations = Conversations()
    for conversation in (then.conversation_id, stolen.conversation_id):
        conversations.staff[conversation] = [
            BotUttered("您好，我是李专员", metadata={"staff": "李专员"}, timestamp=100.0)
        ]
    async for server in _serve(site, monkeypatch, conversations):
        # The conversation id staff and the stores see is no token.
        for token in (expired, stolen.conversation_id, forged, None, 42):
            answer = await _missed(server, {"session_id": token})
            assert answer.status == 401, token
            assert "李专员" not in answer.body.decode()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"session_id": "x", "after": "soon"}', b"x" * 2000],
)
async def test_a_bad_staff_reply_request_is_400(
    site: Path, monkeypatch: pytest.MonkeyPatch, tokens: SessionTokens, body: bytes
) -> None:
    if b"session_id" in body:
        body = json.dumps({"session_id": tokens.issue(), "after": "soon"}).encode()
    async for server in _serve(site, monkeypatch):
        assert (await _missed(server, body)).status == 400


def test_the_token_never_goes_into_a_url() -> None:
    app = (PUBLIC / "app.js").read_text(encoding="utf-8")
    assert "searchParams" not in app and "?sender" not in app
    assert 'method: "POST"' in app


# --- the page ------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.references: list[str] = []
        self.inline_script = False
        self.lang: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "script":
            self.scripts.append(values)
            self._in_script = True
        for name in ("src", "href"):
            if values.get(name):
                self.references.append(str(values[name]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def test_the_page_has_no_inline_script_and_names_only_local_files() -> None:
    html = (PUBLIC / "index.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    assert page.lang == "zh-CN"
    assert page.scripts == [{"type": "module", "src": "app.js"}]
    assert not page.inline_script and not page.handlers
    assert "您正在与智能助手对话，随时可以说“转人工”" in html
    assert 'name="viewport"' in html
    for reference in page.references:
        if reference.startswith("data:"):
            continue
        assert "//" not in reference, reference
        assert (PUBLIC / reference).is_file(), reference


def test_the_page_scripts_load_nothing_from_elsewhere() -> None:
    for file in PUBLIC.glob("*.*"):
        text = file.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, file.name
    app = (PUBLIC / "app.js").read_text(encoding="utf-8")
    assert 'from "./vendor/socket.io.esm.min.js"' in app
    assert 'import "./vendor/deep-chat.js"' in app


def test_the_npm_packages_are_pinned() -> None:
    package = json.loads((PUBLIC.parent / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((PUBLIC.parent / "package-lock.json").read_text(encoding="utf-8"))
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name} must be pinned to one version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    # python-socketio 5 speaks Socket.IO protocol 5: socket.io-client 4.
    assert package["dependencies"]["socket.io-client"].startswith("4.")


# --- the message formatter (format.js, run with Node) -------------------------------------------

SAMPLES = {
    "offer": (
        "方案1：个性化分期（停息挂账）。逾期欠款共 23,560.00 元分 23 期还清，"
        "每月还 1,024.35 元，首期 2026-12-14（星期一），末期 2028-10-14（星期六）；"
        "分期期间停止计息，减免罚息及费用 0.00 元。"
    ),
    "extension": (
        "方案2：贷款延期。先暂停还款 3 个月，之后把逾期的 3,000.00 元分 6 个月补上，"
        "每月补还 500.00 元（2026-12-14（星期一） 至 2027-05-14（星期五）），"
        "同时恢复正常月供 1,200.00 元；贷款期限相应顺延 3 个月。"
    ),
    "settlement": (
        "方案3：一次性结清减免。在 2026-12-14（星期一） 前一次还 20,000.00 元即可结清，"
        "减免利息和费用 3,560.00 元（本金不减免）。"
    ),
    "schedule": (
        "协议编号 XS1 的还款计划（共 3 期，合计 3,073.04 元，币种 CNY；"
        "每行：期数. 还款日 金额）：\n"
        "1. 2026-12-14（星期一）  1,024.35\n2. 2027-01-14（星期四）  1,024.35\n"
        "3. 2027-02-14（星期日）  1,024.34"
    ),
    "terms": (
        "请确认协议内容：\n1. 逾期欠款：共 23,560.00 元（币种 CNY）。\n"
        "2. 还款方式：按月还款，共 23 期。\n3. 分期期间：停止计收利息。"
    ),
    "hostile": '<img src=x onerror="alert(1)">\n第二行 & "引号"',
    "plain": "请告诉我您的本人姓名（与身份证一致）。",
    "one_numbered": "4. 您承诺：在协议约定的款项全部还清之前，不在任何银行申请新的信用卡。",
}

RUN_FORMAT = """
import { formatBotText, offerFigures } from %s;
const samples = JSON.parse(process.argv[1]);
const out = {};
for (const [name, text] of Object.entries(samples)) {
  out[name] = { html: formatBotText(text), offer: offerFigures(text) };
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def formatted() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (it is needed for `npm ci` too)")
    script = RUN_FORMAT % json.dumps((PUBLIC / "format.js").as_uri())
    result = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return out


def test_an_offer_becomes_a_table_of_its_figures(formatted: dict[str, dict[str, Any]]) -> None:
    offer = formatted["offer"]["offer"]
    assert (offer["index"], offer["name"]) == ("1", "个性化分期（停息挂账）")
    assert offer["figures"] == [
        ["还款总额", "23,560.00 元"],
        ["期数", "23 期"],
        ["每月还款", "1,024.35 元"],
        ["首期", "2026-12-14（星期一）"],
        ["末期", "2028-10-14（星期六）"],
        ["减免金额", "0.00 元"],
    ]
    html = formatted["offer"]["html"]
    assert (
        '<table class="wc-table wc-offer"><caption>方案1：个性化分期（停息挂账）</caption>' in html
    )
    assert SAMPLES["offer"] in html  # the whole text is kept under the table


def test_other_offers_have_their_own_figures(formatted: dict[str, dict[str, Any]]) -> None:
    assert dict(formatted["extension"]["offer"]["figures"]) == {
        "暂停还款": "3 个月",
        "需补还": "3,000.00 元",
        "期数": "6 期",
        "每月还款": "500.00 元",
        "补还期间": "2026-12-14（星期一） 至 2027-05-14（星期五）",
        "恢复正常月供": "1,200.00 元",
    }
    assert dict(formatted["settlement"]["offer"]["figures"]) == {
        "还款总额": "20,000.00 元",
        "还款期限": "2026-12-14（星期一） 前",
        "减免金额": "3,560.00 元",
    }


def test_a_schedule_becomes_a_table_of_instalments(formatted: dict[str, dict[str, Any]]) -> None:
    html = formatted["schedule"]["html"]
    assert "<p>协议编号 XS1 的还款计划（共 3 期，合计 3,073.04 元，币种 CNY）：</p>" in html
    assert (
        '<th scope="col">期数</th><th scope="col">还款日</th><th scope="col">金额（元）</th>'
        in html
    )
    assert html.count("<tr>") == 4
    assert "<tr><td>3</td><td>2027-02-14（星期日）</td><td>1,024.34</td></tr>" in html


def test_numbered_terms_become_a_two_column_table(formatted: dict[str, dict[str, Any]]) -> None:
    html = formatted["terms"]["html"]
    assert html.startswith('<p>请确认协议内容：</p><table class="wc-table wc-terms">')
    assert '<th scope="row">2. 还款方式</th><td>按月还款，共 23 期。</td>' in html


def test_other_text_is_escaped_paragraphs(formatted: dict[str, dict[str, Any]]) -> None:
    assert formatted["hostile"]["html"] == (
        "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>第二行 &amp; &quot;引号&quot;</p>"
    )
    assert formatted["plain"]["html"] == f"<p>{SAMPLES['plain']}</p>"
    assert formatted["one_numbered"]["html"] == f"<p>{SAMPLES['one_numbered']}</p>"
    assert formatted["plain"]["offer"] is None


# --- what the page keeps on the device (privacy.js, run with Node) ------------------------------

RUN_PRIVACY = """
import { MAX_STORED, storedUserText, usableState } from %s;
const [cases, states, now] = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  max: MAX_STORED,
  stored: cases.map(([text, prompt]) => storedUserText(text, prompt)),
  usable: states.map((s) => usableState(s, now)),
}));
"""

VERIFY_PROMPTS = [
    "请提供您身份证号的后四位（最后一位可能是 X）。",
    "请提供您在本行预留的 11 位手机号。",
    "请告诉我您的本人姓名（与身份证一致）。",
]


def _privacy(cases: list[list[str]], states: list[Any], now: int) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (it is needed for `npm ci` too)")
    script = RUN_PRIVACY % json.dumps((PUBLIC / "privacy.js").as_uri())
    result = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps([cases, states, now])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_what_the_debtor_typed_to_verify_is_stored_masked() -> None:
    cases = [
        ["123X", VERIFY_PROMPTS[0]],
        ["１２３４", VERIFY_PROMPTS[0]],
        ["13800138000", VERIFY_PROMPTS[1]],
        ["张伟 1234 13800138000", VERIFY_PROMPTS[2]],
        ["我的手机是 138-0013-8000", "好的，还有什么可以帮您？"],
        ["我每月能还 1500 元", "请问您每月大概能还多少？"],
    ]
    stored = _privacy(cases, [], 0)["stored"]
    assert stored[:4] == ["••••", "••••", "•••••••••••", "张伟 •••• •••••••••••"]
    # Elsewhere a long number is masked, an amount is kept.
    assert stored[4:] == ["我的手机是 •••-••••-••••", "我每月能还 1500 元"]
    for text in stored[:5]:
        assert not any(c.isdigit() for c in text), text


def test_the_history_expires_with_its_token_and_is_capped() -> None:
    now = 1_800_000_000_000
    messages = [{"role": "user", "text": str(i)} for i in range(150)]
    states = [
        {"sessionId": "t", "expiresAt": now + 1000, "messages": messages},
        {"sessionId": "t", "expiresAt": now - 1, "messages": messages},
        # What pages kept before tokens expired: no expiry at all.
        {"sessionId": "a" * 32 + "." + "b" * 32, "messages": messages},
        None,
        "not an object",
    ]
    out = _privacy([], states, now)
    assert out["max"] == 100
    kept, *dropped = out["usable"]
    assert [m["text"] for m in kept["messages"]] == [str(i) for i in range(50, 150)]
    assert dropped == [None, None, None, None]
