"""The ID suffix and mobile a conversation gave so far, kept for the identity check.

The tracker store keeps only masked forms of them (`bot.domain.redaction`), so
a debtor who gives the details over several messages would otherwise reach the
check with `****` in hand. The form's validation keeps each piece here as it
is given, and the check reads them back. Each piece is encrypted (AES-GCM, the
conversation and piece bound in as associated data) with the key
`VERIFICATION_KEY` (32 bytes, URL-safe base64; required in the scale profile;
otherwise the file `var/verification.key`, made on first use). A row lives
`KEEP_FOR` after its last piece and is removed once the check ran or the
details were dropped. A piece that cannot be decrypted (another key, an altered
row) counts as not given: the form asks for it again.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects import postgresql, sqlite

from bot.profile import require_shared
from bot.store.engine import REPO_ROOT, Database
from bot.store.models import VerificationProgress, utcnow

#: The pieces kept; the name stays in the conversation's slots.
PIECES = ("id_last4", "phone")
KEEP_FOR = timedelta(minutes=30)
KEY_VARIABLE = "VERIFICATION_KEY"
DEFAULT_KEY_FILE = REPO_ROOT / "var" / "verification.key"
KEY_BYTES, NONCE_BYTES = 32, 12
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class BadVerificationKey(ValueError):
    """`VERIFICATION_KEY` is not 32 bytes in URL-safe base64."""


def new_key() -> str:
    """A fresh key, as `VERIFICATION_KEY` takes it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _key_file(path: Path) -> str:
    """The key in `path`, written first (mode 600) if there is none yet."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(new_key())
    return path.read_text(encoding="ascii").strip()


@functools.lru_cache(maxsize=4)
def _cipher(encoded: str) -> AESGCM:
    try:
        key = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as error:
        raise BadVerificationKey(f"{KEY_VARIABLE} is not URL-safe base64") from error
    if len(key) != KEY_BYTES:
        raise BadVerificationKey(f"{KEY_VARIABLE} must hold {KEY_BYTES} bytes, not {len(key)}")
    return AESGCM(key)


def cipher() -> AESGCM:
    """The cipher of `VERIFICATION_KEY`, or of the key file when it is not set."""
    encoded = require_shared(KEY_VARIABLE)
    if not encoded:
        DEFAULT_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        encoded = _key_file(DEFAULT_KEY_FILE)
    return _cipher(encoded)


def _bound(conversation_id: str, piece: str) -> bytes:
    return f"{piece}\x00{conversation_id}".encode()


def seal(conversation_id: str, piece: str, value: str) -> str:
    """`value` encrypted for this conversation and piece."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = cipher().encrypt(nonce, value.encode(), _bound(conversation_id, piece))
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(conversation_id: str, piece: str, token: str) -> str | None:
    """The value `seal` encrypted, or None if it cannot be (other key, altered)."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        return cipher().decrypt(nonce, sealed, _bound(conversation_id, piece)).decode()
    except (binascii.Error, InvalidTag, UnicodeError, ValueError):
        return None


def _check(conversation_id: str, piece: str | None = None) -> None:
    if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 255:
        raise ValueError("conversation_id must be a string of 1-255 characters")
    if piece is not None and piece not in PIECES:
        raise ValueError(f"unknown piece {piece!r}: one of {PIECES}")


async def remember(
    db: Database, conversation_id: str, piece: str, value: str | None, now: datetime | None = None
) -> None:
    """Keep (or, with None, drop) one piece; the row then lives `KEEP_FOR` more."""
    _check(conversation_id, piece)
    now = now or utcnow()
    sealed = None if value is None else seal(conversation_id, piece, value)
    values = {piece: sealed, "expires_at": now + KEEP_FOR}
    async with db.session() as session:
        table = VerificationProgress.__table__
        await session.execute(sa.delete(table).where(table.c.expires_at <= now))
        insert = _INSERTS[session.bind.dialect.name](table)
        await session.execute(
            insert.values(conversation_id=conversation_id, **values).on_conflict_do_update(
                index_elements=[table.c.conversation_id], set_=values
            )
        )
        await session.commit()


async def recall(db: Database, conversation_id: str, now: datetime | None = None) -> dict[str, str]:
    """The pieces given and not expired, by name (`id_last4`, `phone`)."""
    _check(conversation_id)
    now = now or utcnow()
    async with db.session() as session:
        row = await session.get(VerificationProgress, conversation_id)
        if row is None or row.expires_at <= now:
            return {}
        sealed = {piece: getattr(row, piece) for piece in PIECES}
    pieces = {}
    for piece, token in sealed.items():
        value = unseal(conversation_id, piece, token) if token else None
        if value is not None:
            pieces[piece] = value
    return pieces


async def forget(db: Database, conversation_id: str) -> None:
    """Drop whatever the conversation gave."""
    _check(conversation_id)
    async with db.session() as session:
        table = VerificationProgress.__table__
        await session.execute(sa.delete(table).where(table.c.conversation_id == conversation_id))
        await session.commit()
