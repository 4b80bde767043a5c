"""Signed session cookies and CSRF tokens of the console.

The cookie holds, signed with the secret key (itsdangerous), the staff member's
id (none before sign-in), a CSRF token and a random session id. It is valid for
12 hours from sign-in. Signing out forgets the cookie; the application also
records the session id as revoked in the database (`bot.store.staff.revoke_session`),
so a copy of the cookie stops working too, across restarts and instances.

The cookie is `Secure` (sent only over HTTPS) unless that is switched off for
development over plain HTTP: `CONSOLE_SECURE_COOKIES=0` (`secure_cookies_setting`).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "console_session"
MAX_AGE_SECONDS = 12 * 60 * 60
_SALT = "bot.console.session"
_ON = frozenset({"", "1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


def secure_cookies_setting(value: str | None) -> bool:
    """`CONSOLE_SECURE_COOKIES` as a flag: on unless explicitly off; ValueError otherwise."""
    text = (value or "").strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ValueError(f"CONSOLE_SECURE_COOKIES must be 1 or 0, not {value!r}")


@dataclass(frozen=True)
class Session:
    """What a session cookie says."""

    staff_id: int | None
    csrf_token: str
    session_id: str

    def csrf_matches(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token (constant-time)."""
        if not token:
            return False
        try:
            given = token.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: a header's undecodable bytes
            return False
        # Bytes: `compare_digest` refuses strings that are not ASCII with a TypeError.
        return hmac.compare_digest(given, self.csrf_token.encode("utf-8"))


class SessionStore:
    """Issues, reads and revokes session cookies."""

    def __init__(self, secret_key: bytes, *, secure: bool = True) -> None:
        if len(secret_key) < 16:
            raise ValueError("the console's secret key must have at least 16 bytes")
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.secure = secure

    @staticmethod
    def new(staff_id: int | None) -> Session:
        """A fresh session with new random tokens."""
        return Session(staff_id, secrets.token_urlsafe(32), secrets.token_urlsafe(16))

    def load(self, request: web.Request) -> Session | None:
        """The request's validly signed, unexpired session, or None (revocation is not checked)."""
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        staff_id, csrf, session_id = data.get("s"), data.get("c"), data.get("n")
        if not isinstance(csrf, str) or not isinstance(session_id, str):
            return None
        if staff_id is not None and not isinstance(staff_id, int):
            return None
        return Session(staff_id, csrf, session_id)

    def save(self, response: web.StreamResponse, session: Session) -> None:
        """Set the cookie of `session` on `response`."""
        value = self._serializer.dumps(
            {"s": session.staff_id, "c": session.csrf_token, "n": session.session_id}
        )
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=MAX_AGE_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )

    @staticmethod
    def clear(response: web.StreamResponse) -> None:
        """Delete the cookie from the browser."""
        response.del_cookie(COOKIE_NAME, path="/")
