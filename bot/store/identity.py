"""Identity verification: name, last four characters of the national ID, mobile.

Every attempt is stored (table `verification_attempts`) and audited with masked
values. After `MAX_FAILED_ATTEMPTS` failures within `LOCK_MINUTES`, for one
conversation or one debtor, checks are refused until the lock expires. Attempts
and locks live in the database, so a restart resets nothing.

The normalisers take untrusted text and return `None` for anything invalid; they
never raise.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.redaction import mobile_mask
from bot.store import audit
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import Debtor, VerificationAttempt, VerificationLock, utcnow

#: Failed attempts within `LOCK_MINUTES` that lock a conversation or a debtor.
MAX_FAILED_ATTEMPTS = 3
#: Length of the failure window and of a lock.
LOCK_MINUTES = 30
#: Who the audit log names for verification entries.
#: Longer input is rejected before any other processing.
MAX_INPUT_CHARS = 200
NAME_MIN_CHARS, NAME_MAX_CHARS = 2, 20
LATIN_NAME_MAX_CHARS = 60

#: scrypt parameters of the national ID hash (fixed: they are not stored with it).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_KEY_BYTES, SCRYPT_SALT_BYTES = 32, 16
HASH_SCHEME = "scrypt"

#: GB 11643-1999: weights of the first 17 digits, and check characters by remainder.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARACTERS = "10X98765432"

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_NAME = re.compile(rf"[{_CJK}]+(?:·[{_CJK}]+)*")
_LATIN_NAME = re.compile(r"[A-Z]+(?:(?:[ '-]|\. ?)[A-Z]+)*\.?")
_NAME_DOTS = str.maketrans(dict.fromkeys("•‧・∙⋅", "·"))
_ID_LAST4 = re.compile(r"[0-9]{3}[0-9X]")
_NATIONAL_ID = re.compile(r"[0-9]{17}[0-9X]")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_MOBILE_SEPARATORS = re.compile(r"[\s\-]+")
_WHITESPACE = re.compile(r"\s+")
#: First key of the PostgreSQL advisory locks that serialise verification.
_LOCK_NAMESPACE_CONVERSATION, _LOCK_NAMESPACE_DEBTOR = 0x4944_0001, 0x4944_0002

Status = Literal["verified", "mismatch", "locked"]


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of one verification call; `debtor_id` is set only when verified."""

    status: Status
    debtor_id: int | None
    attempts_left: int
    locked_until: datetime | None

    @property
    def verified(self) -> bool:
        return self.status == "verified"


# --- normalisers and masks -------------------------------------------------------------


def _clean(text: object) -> str | None:
    """NFKC-normalised `text`, or None if it is not a string of sane length."""
    if not isinstance(text, str) or not text or len(text) > MAX_INPUT_CHARS:
        return None
    return unicodedata.normalize("NFKC", text).strip()


def normalize_name(text: object) -> str | None:
    """A Chinese name without spaces (2-20 characters), an upper-case Latin name, or None."""
    cleaned = _clean(text)
    if not cleaned:
        return None
    chinese = _WHITESPACE.sub("", cleaned).translate(_NAME_DOTS)
    if NAME_MIN_CHARS <= len(chinese) <= NAME_MAX_CHARS and _CJK_NAME.fullmatch(chinese):
        return chinese
    latin = _WHITESPACE.sub(" ", cleaned).upper()
    if NAME_MIN_CHARS <= len(latin) <= LATIN_NAME_MAX_CHARS and _LATIN_NAME.fullmatch(latin):
        return latin
    return None


def normalize_id_last4(text: object) -> str | None:
    """The last four characters of a national ID (3 digits and a digit or X), or None."""
    cleaned = _clean(text)
    if cleaned is None:
        return None
    value = _WHITESPACE.sub("", cleaned).upper()
    return value if _ID_LAST4.fullmatch(value) else None


def normalize_mobile(text: object) -> str | None:
    """An 11-digit mainland mobile number, or None; spaces, dashes and +86/86 are dropped."""
    cleaned = _clean(text)
    if cleaned is None:
        return None
    value = _MOBILE_SEPARATORS.sub("", cleaned)
    for prefix in ("+86", "0086", "86"):
        if value.startswith(prefix) and len(value) == len(prefix) + 11:
            value = value[len(prefix) :]
            break
    return value if _MOBILE.fullmatch(value) else None


def normalize_national_id(text: object) -> str | None:
    """An 18-character national ID (17 digits and a digit or X), or None.

    The check digit is not verified here (see `is_valid_national_id`): what the
    bank has on file is what counts.
    """
    cleaned = _clean(text)
    if cleaned is None:
        return None
    value = _WHITESPACE.sub("", cleaned).upper()
    return value if _NATIONAL_ID.fullmatch(value) else None


def national_id_check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a national ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARACTERS[total % 11]


def is_valid_national_id(text: object) -> bool:
    """Whether `text` is an 18-character national ID with a correct check character."""
    value = normalize_national_id(text)
    return value is not None and national_id_check_character(value[:17]) == value[17]


def mask_mobile(mobile: str) -> str:
    """`13800138000` -> `138****8000`; anything else is fully masked."""
    value = normalize_mobile(mobile)
    return mobile_mask(value) if value else "***"


def mask_name(name: str) -> str:
    """Keep the first character: `张伟` -> `张*`, `王小明` -> `王**`."""
    if not isinstance(name, str) or not name:
        return ""
    name = name[:MAX_INPUT_CHARS]
    return name[0] + "".join(" " if char == " " else "*" for char in name[1:])


# --- national ID hashing ---------------------------------------------------------------


def _scrypt(national_id: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        national_id.encode("ascii"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=256 * SCRYPT_N * SCRYPT_R,
        dklen=SCRYPT_KEY_BYTES,
    )


def hash_national_id(national_id: str) -> str:
    """`scrypt$<salt-hex>$<hash-hex>` of the full ID with a random salt."""
    value = normalize_national_id(national_id)
    if value is None:
        raise ValueError("not an 18-character national ID")
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    return f"{HASH_SCHEME}${salt.hex()}${_scrypt(value, salt).hex()}"


def national_id_matches(stored_hash: str, national_id: str) -> bool:
    """Whether `national_id` is the one hashed in `stored_hash` (constant-time compare)."""
    value = normalize_national_id(national_id)
    scheme, _, rest = stored_hash.partition("$")
    salt_hex, _, hash_hex = rest.partition("$")
    if value is None or scheme != HASH_SCHEME:
        return False
    try:
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(value, salt), expected)


# --- verification ----------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def _check_conversation_id(conversation_id: str) -> None:
    if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 255:
        raise ValueError("conversation_id must be a string of 1-255 characters")


#: `conversation_id` of a lock on a debtor alone (never a real conversation id,
#: which is not empty); such a lock never tells a conversation it is locked.
DEBTOR_LOCK_SCOPE = ""


async def _lock_until(
    session: AsyncSession, conversation_id: str, debtor_id: int | None, now: datetime
) -> datetime | None:
    scope = VerificationLock.conversation_id == conversation_id
    if debtor_id is not None:
        scope = sa.or_(scope, VerificationLock.debtor_id == debtor_id)
    query = sa.select(sa.func.max(VerificationLock.locked_until)).where(
        scope, VerificationLock.locked_until > now
    )
    # max() keeps the column type, so the value comes back timezone-aware.
    return (await session.execute(query)).scalar_one_or_none()


async def _debtor_lock_until(
    session: AsyncSession, debtor_id: int, now: datetime
) -> datetime | None:
    query = sa.select(sa.func.max(VerificationLock.locked_until)).where(
        VerificationLock.debtor_id == debtor_id, VerificationLock.locked_until > now
    )
    return (await session.execute(query)).scalar_one_or_none()


async def active_lock(
    db: Database, conversation_id: str, debtor_id: int | None = None, now: datetime | None = None
) -> datetime | None:
    """When the lock on this conversation (or this debtor) ends, or None if there is none."""
    _check_conversation_id(conversation_id)
    async with db.session() as session:
        return await _lock_until(session, conversation_id, debtor_id, _now(now))


async def _failures(
    session: AsyncSession,
    attempt_column: sa.Column,
    lock_column: sa.Column,
    value: object,
    now: datetime,
) -> int:
    """Failures in the window for one conversation or debtor, since its latest lock began."""
    since = now - timedelta(minutes=LOCK_MINUTES)
    last_lock = sa.select(sa.func.max(VerificationLock.created_at)).where(lock_column == value)
    locked_at = (await session.execute(last_lock)).scalar_one_or_none()
    if locked_at is not None:
        since = max(since, locked_at)
    query = sa.select(sa.func.count()).where(
        attempt_column == value,
        sa.not_(VerificationAttempt.succeeded),
        VerificationAttempt.created_at > since,
        VerificationAttempt.created_at <= now,
    )
    return int((await session.execute(query)).scalar_one())


async def _serialize(session: AsyncSession, conversation_id: str, debtor_id: int | None) -> None:
    """Make concurrent checks of one conversation or one debtor wait for each other.

    Without this, parallel attempts could all count the same earlier failures and
    get more than `MAX_FAILED_ATTEMPTS` tries. PostgreSQL: transaction-scoped
    advisory locks, always the conversation's before the debtor's (no deadlock).
    SQLite: a no-op write takes the database's single write lock.
    """
    if session.bind.dialect.name == "postgresql":
        keys = [(_LOCK_NAMESPACE_CONVERSATION, advisory_lock_key(conversation_id))]
        if debtor_id is not None:
            keys.append((_LOCK_NAMESPACE_DEBTOR, debtor_id))
        for namespace, key in keys:
            statement = sa.text("SELECT pg_advisory_xact_lock(:namespace, :key)")
            await session.execute(statement, {"namespace": namespace, "key": key})
    else:
        await session.execute(sa.text("UPDATE verification_locks SET id = id WHERE 1 = 0"))


async def _match(
    session: AsyncSession, name: str | None, id_last4: str | None, mobile: str | None
) -> tuple[int | None, int | None, list[str]]:
    """(debtor matching all three, debtor pointed at, factors matching the latter)."""
    conditions = []
    if mobile is not None:
        conditions.append(Debtor.mobile == mobile)
    if name is not None and id_last4 is not None:
        conditions.append(sa.and_(Debtor.full_name == name, Debtor.national_id_last4 == id_last4))
    if not conditions:
        return None, None, []
    query = sa.select(Debtor.id, Debtor.full_name, Debtor.national_id_last4, Debtor.mobile)
    rows = (await session.execute(query.where(sa.or_(*conditions)).order_by(Debtor.id))).all()

    def factors(row: sa.engine.Row) -> list[str]:
        checks = (
            ("name", row.full_name == name),
            ("id_last4", row.national_id_last4 == id_last4),
            ("mobile", row.mobile == mobile),
        )
        return [factor for factor, ok in checks if ok]

    by_mobile = [row for row in rows if row.mobile == mobile]
    by_name_last4 = [
        row for row in rows if row.full_name == name and row.national_id_last4 == id_last4
    ]
    if by_mobile and by_mobile[0].full_name == name:  # name and mobile (maybe all three)
        row = by_mobile[0]
        return (row.id if len(factors(row)) == 3 else None), row.id, factors(row)
    if len(by_name_last4) == 1:
        return None, by_name_last4[0].id, factors(by_name_last4[0])
    if by_mobile:
        return None, by_mobile[0].id, factors(by_mobile[0])
    return None, None, []


async def _lock_out(
    session: AsyncSession,
    scope: str,
    conversation_id: str,
    debtor_id: int | None,
    failures: int,
    now: datetime,
) -> datetime:
    """Write a lock for `scope` (a conversation, or DEBTOR_LOCK_SCOPE) and audit it."""
    until = now + timedelta(minutes=LOCK_MINUTES)
    session.add(
        VerificationLock(
            conversation_id=scope, debtor_id=debtor_id, locked_until=until, created_at=now
        )
    )
    action = "verification_locked" if scope == conversation_id else "verification_debtor_locked"
    details = {"locked_until": until, "failures": failures}
    await audit.record(
        session, audit.BOT_ACTOR, action, conversation_id, debtor_id, details, at=now
    )
    return until


async def verify_identity(
    db: Database,
    conversation_id: str,
    name: str | None,
    id_last4: str | None,
    mobile: str | None,
    now: datetime | None = None,
) -> VerificationResult:
    """Check the three details against the debtors on file, enforcing the lock rules.

    Verified only if one debtor matches all three. While a lock is active for the
    conversation or the debtor the details point at, the answer is "locked"
    whatever the details. Invalid input counts as a failed attempt.
    """
    _check_conversation_id(conversation_id)
    now = _now(now)
    given_name = normalize_name(name)
    given_last4 = normalize_id_last4(id_last4)
    given_mobile = normalize_mobile(mobile)
    async with db.session() as session:
        verified_id, debtor_id, matched = await _match(
            session, given_name, given_last4, given_mobile
        )
        await _serialize(session, conversation_id, debtor_id)
        until = await _lock_until(session, conversation_id, None, now)
        if until is not None:
            blocked = {"locked_until": until}
            action = "verification_blocked"
            await audit.record(
                session, audit.BOT_ACTOR, action, conversation_id, debtor_id, blocked, at=now
            )
            await session.commit()
            return VerificationResult("locked", None, 0, until)

        # A debtor locked out by failures in other conversations is never verified,
        # but this conversation is answered exactly as for wrong details: the answer
        # must not tell a stranger that the details belong to a customer.
        debtor_locked = (
            debtor_id is not None and await _debtor_lock_until(session, debtor_id, now) is not None
        )
        succeeded = verified_id is not None and not debtor_locked
        session.add(
            VerificationAttempt(
                conversation_id=conversation_id,
                debtor_id=debtor_id,
                succeeded=succeeded,
                created_at=now,
            )
        )
        details: dict[str, object] = {
            "name": mask_name(given_name) if given_name else None,
            "mobile": mask_mobile(given_mobile) if given_mobile else None,
            "id_last4_given": given_last4 is not None,
            "matched": matched,
            "debtor_locked": debtor_locked,
        }
        action = "verification_succeeded" if succeeded else "verification_failed"
        await audit.record(
            session, audit.BOT_ACTOR, action, conversation_id, debtor_id, details, at=now
        )
        await session.flush()

        failures = await _failures(
            session,
            VerificationAttempt.conversation_id,
            VerificationLock.conversation_id,
            conversation_id,
            now,
        )
        attempts_left = max(0, MAX_FAILED_ATTEMPTS - failures)

        if not succeeded and failures >= MAX_FAILED_ATTEMPTS:
            until = await _lock_out(
                session, conversation_id, conversation_id, debtor_id, failures, now
            )
            await session.commit()
            return VerificationResult("locked", None, 0, until)

        if not succeeded and debtor_id is not None and not debtor_locked:
            debtor_failures = await _failures(
                session, VerificationAttempt.debtor_id, VerificationLock.debtor_id, debtor_id, now
            )
            if debtor_failures >= MAX_FAILED_ATTEMPTS:
                # Failures spread over several conversations lock the debtor only.
                await _lock_out(
                    session, DEBTOR_LOCK_SCOPE, conversation_id, debtor_id, debtor_failures, now
                )

        await session.commit()
        if succeeded:
            return VerificationResult("verified", verified_id, attempts_left, None)
        return VerificationResult("mismatch", None, attempts_left, None)


#: How long after a successful verification a conversation may be told a debtor's figures.
VERIFIED_FOR = timedelta(hours=12)


async def is_verified(
    db: Database, conversation_id: str, debtor_id: int, now: datetime | None = None
) -> bool:
    """Whether this conversation verified as this debtor recently (checked on the server).

    Actions receive the conversation's slots from whoever calls the action server;
    before disclosing anything they confirm the verification against the database.
    """
    _check_conversation_id(conversation_id)
    now = _now(now)
    query = sa.select(sa.func.count()).where(
        VerificationAttempt.conversation_id == conversation_id,
        VerificationAttempt.debtor_id == debtor_id,
        VerificationAttempt.succeeded,
        VerificationAttempt.created_at > now - VERIFIED_FOR,
    )
    async with db.session() as session:
        return int((await session.execute(query)).scalar_one()) > 0
