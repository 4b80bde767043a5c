"""Staff accounts of the console: argon2 password hashes and rate-limited sign-in.

Passwords are stored only as argon2id hashes (`HASHER`; tests swap in cheaper
parameters). Hashing runs in a worker thread so that the event loop stays free.

Sign-in is limited with the `staff_sign_in_failures` table: once 5 attempts for
one user name (`user:<name>`) failed in the last 15 minutes, further attempts
for it are refused with `SignInLimited`, even with the right password. Once 20
from one address (`addr:<remote>`) failed, that address's attempts are still
checked, but only a right password signs in: anything else is refused with
`SignInLimited` (an address may be a proxy many colleagues share, whom a guesser
must not lock out). An attempt is counted before its password is checked (and
forgotten again if it succeeds); counting takes a lock on the user name (a
PostgreSQL advisory lock, or one in the process on SQLite), so that parallel
guesses count each other and a burst gets no more tries than the limit. An
unknown user name is checked against a dummy hash, so that it costs the same
time as a wrong password.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError

from bot.domain.vocabulary import STAFF_ROLES
from bot.store import audit
from bot.store.engine import Database, advisory_lock_key
from bot.store.models import RevokedSession, SignInFailure, StaffMember, utcnow

USERNAME_PATTERN = re.compile(r"[a-z0-9_.-]{2,64}")
MIN_PASSWORD_LENGTH = 10
#: argon2 works on bytes; an absurdly long password is refused rather than hashed.
MAX_PASSWORD_LENGTH = 1024
MAX_DISPLAY_NAME_LENGTH = 100
FAILURE_WINDOW = timedelta(minutes=15)
MAX_USER_FAILURES = 5
MAX_ADDRESS_FAILURES = 20

#: The hasher of new passwords; replaced with cheap parameters by the tests.
HASHER = PasswordHasher()

_dummy: tuple[PasswordHasher, str] | None = None
#: Core table: plain deletes, without the ORM's synchronisation of loaded objects.
_failures = SignInFailure.__table__
#: First key of the PostgreSQL advisory locks that serialise counting per user name.
_LOCK_NAMESPACE_SIGN_IN = 0x5354_0001
#: The same on SQLite, where one process serves the database; a lock goes when
#: no attempt holds or awaits it.
_local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

#: Which limit an attempt is over: none, its address's, or its user name's.
Limit = Literal["", "address", "user"]


class StaffInputError(ValueError):
    """A staff account change refused, with a code the console words
    (`bot.console.texts.STAFF_ERRORS`) and the values its sentence needs."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(code)
        self.code = code
        self.values = values


class SignInLimited(Exception):
    """Too many failed sign-ins for this user name or address: try again later."""


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of `password`; blocking, CPU-bound."""
    return HASHER.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    """A hash of a random password made with the current `HASHER`'s parameters."""
    global _dummy
    if _dummy is None or _dummy[0] is not HASHER:
        _dummy = (HASHER, HASHER.hash("dummy password, never a real one"))
    return _dummy[1]


def validate_username(username: str) -> str:
    """`username` if it is 2-64 of a-z, 0-9, `_`, `.`, `-`; else ValueError."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise StaffInputError("bad_username")
    return username


def validate_password(password: str) -> str:
    """`password` if it is long enough (and not absurdly long); else ValueError."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffInputError("password_too_short", length=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffInputError("password_too_long", length=MAX_PASSWORD_LENGTH)
    return password


async def create_staff(
    db: Database, username: str, display_name: str, password: str, role: str
) -> StaffMember:
    """Add an active staff member; ValueError on bad input or a taken user name."""
    validate_username(username)
    display_name = display_name.strip()
    if not display_name or len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise StaffInputError("bad_display_name", length=MAX_DISPLAY_NAME_LENGTH)
    validate_password(password)
    if role not in STAFF_ROLES:
        raise StaffInputError("unknown_role", roles=STAFF_ROLES)
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.session() as session:
        taken = (
            await session.execute(sa.select(StaffMember.id).where(StaffMember.username == username))
        ).scalar_one_or_none()
        if taken is not None:
            raise StaffInputError("username_taken", username=username)
        member = StaffMember(
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            role=role,
            active=True,
        )
        session.add(member)
        try:
            await session.flush()
        except IntegrityError as error:
            raise StaffInputError("username_taken", username=username) from error
        await audit.record(session, "system", "staff_created", details={"staff": username})
        await session.commit()
    return member


async def set_password(db: Database, username: str, password: str) -> StaffMember:
    """Give an existing staff member a new password; ValueError if unknown or too short."""
    validate_password(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.session() as session:
        member = (
            await session.execute(sa.select(StaffMember).where(StaffMember.username == username))
        ).scalar_one_or_none()
        if member is None:
            raise StaffInputError("unknown_username", username=username)
        member.password_hash = password_hash
        await audit.record(
            session, "system", "staff_password_set", details={"staff": member.username}
        )
        await session.commit()
    return member


async def set_active(db: Database, username: str, active: bool) -> bool:
    """Activate or deactivate an account; False if there is no such user name.

    A deactivated member's console session stops working at their next request.
    """
    async with db.session() as session:
        result = await session.execute(
            sa.update(StaffMember).where(StaffMember.username == username).values(active=active)
        )
        if result.rowcount != 1:
            await session.rollback()
            return False
        await audit.record(
            session,
            "system",
            "staff_activated" if active else "staff_deactivated",
            details={"staff": username},
        )
        await session.commit()
    return True


async def get_staff(db: Database, staff_id: int) -> StaffMember | None:
    """One staff member by id (active or not), or None."""
    async with db.session() as session:
        return await session.get(StaffMember, staff_id)


async def get_staff_by_username(db: Database, username: str) -> StaffMember | None:
    """One staff member by user name, or None."""
    async with db.session() as session:
        return (
            await session.execute(sa.select(StaffMember).where(StaffMember.username == username))
        ).scalar_one_or_none()


def _keys(username: str, remote_address: str | None) -> tuple[str, str]:
    # Bounded: the key column holds 300 characters.
    return f"user:{username[:200]}", f"addr:{(remote_address or 'unknown')[:200]}"


async def _count_and_claim(db: Database, user_key: str, addr_key: str) -> tuple[Limit, list[int]]:
    """Which limit the attempt is over; unless it is the user name's, its provisional failures.

    One attempt per user name at a time counts and claims, so that parallel
    guesses cannot all see the same count.
    """
    if db.dialect == "postgresql":
        return await _count_and_claim_locked(db, user_key, addr_key)
    lock = _local_locks.get(user_key)
    if lock is None:
        lock = _local_locks[user_key] = asyncio.Lock()
    async with lock:
        return await _count_and_claim_locked(db, user_key, addr_key)


async def _count_and_claim_locked(
    db: Database, user_key: str, addr_key: str
) -> tuple[Limit, list[int]]:
    now = utcnow()
    since = now - FAILURE_WINDOW
    async with db.session() as session:
        if db.dialect == "postgresql":
            # Held until this transaction ends, after the claim is committed.
            await session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": _LOCK_NAMESPACE_SIGN_IN, "key": advisory_lock_key(user_key)},
            )
        counts = dict(
            (
                await session.execute(
                    sa.select(SignInFailure.key, sa.func.count())
                    .where(
                        _failures.c.key.in_((user_key, addr_key)),
                        SignInFailure.created_at >= since,
                    )
                    .group_by(SignInFailure.key)
                )
            ).all()
        )
        if counts.get(user_key, 0) >= MAX_USER_FAILURES:
            await session.rollback()
            return "user", []
        limit: Limit = "address" if counts.get(addr_key, 0) >= MAX_ADDRESS_FAILURES else ""
        # Old rows serve no limit any more.
        await session.execute(sa.delete(_failures).where(_failures.c.created_at < since))
        rows = [
            SignInFailure(key=user_key, created_at=now),
            SignInFailure(key=addr_key, created_at=now),
        ]
        session.add_all(rows)
        await session.commit()
        return limit, [row.id for row in rows]


def _audit_name(username: str) -> str:
    # What was typed in the user name box may be a password: keep only plausible names.
    return username if USERNAME_PATTERN.fullmatch(username) else "(invalid user name)"


async def authenticate(
    db: Database, username: str, password: str, remote_address: str | None
) -> StaffMember | None:
    """The active staff member with these credentials, or None.

    Raises `SignInLimited` when the user name failed too often lately, whatever
    the password, and when the address did and the credentials are not right.
    Every outcome is audited.
    """
    username = username.strip().lower()
    user_key, addr_key = _keys(username, remote_address)
    details = {"username": _audit_name(username), "remote_address": remote_address or "unknown"}
    limit, provisional = await _count_and_claim(db, user_key, addr_key)
    if limit == "user":
        await audit.record(
            db, "system", "staff_sign_in_failed", details={**details, "why": "limited"}
        )
        raise SignInLimited("too many failed sign-ins")
    member = await get_staff_by_username(db, username) if len(username) <= 64 else None
    password = password[:MAX_PASSWORD_LENGTH]
    if member is None:
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        why = "unknown_user"
    elif not await asyncio.to_thread(_verify, member.password_hash, password):
        why = "wrong_password"
    elif not member.active:
        why = "inactive"
    else:
        why = ""
    if why and limit == "address":
        # Checked all the same, and counted for the user name: only the answer differs.
        await audit.record(
            db,
            "system",
            "staff_sign_in_failed",
            details={**details, "why": why, "refused": "address_limited"},
        )
        raise SignInLimited("too many failed sign-ins from this address")
    if why:
        await audit.record(db, "system", "staff_sign_in_failed", details={**details, "why": why})
        return None
    assert member is not None
    async with db.session() as session:
        # The attempt succeeded: it and this user's earlier failures no longer count.
        await session.execute(
            sa.delete(_failures).where(
                sa.or_(
                    _failures.c.id.in_(provisional),
                    _failures.c.key == user_key,
                )
            )
        )
        if HASHER.check_needs_rehash(member.password_hash):
            member.password_hash = await asyncio.to_thread(hash_password, password)
            await session.execute(
                sa.update(StaffMember)
                .where(StaffMember.id == member.id)
                .values(password_hash=member.password_hash)
            )
        await audit.record(
            session,
            f"staff:{member.username}",
            "staff_signed_in",
            details={"remote_address": remote_address or "unknown"},
        )
        await session.commit()
    return member


# --- signed-out sessions -----------------------------------------------------------------

_revoked = RevokedSession.__table__


async def revoke_session(db: Database, session_id: str, lifetime_seconds: int) -> None:
    """Refuse the session `session_id` from now on (its cookie lives `lifetime_seconds`)."""
    now = utcnow()
    async with db.session() as session:
        # Revocations of cookies that have expired anyway are no longer needed.
        await session.execute(sa.delete(_revoked).where(_revoked.c.expires_at < now))
        exists = await session.get(RevokedSession, session_id)
        if exists is None:
            session.add(
                RevokedSession(
                    session_id=session_id,
                    expires_at=now + timedelta(seconds=lifetime_seconds),
                )
            )
        await session.commit()


async def is_revoked(db: Database, session_id: str) -> bool:
    """Whether the session was signed out."""
    async with db.session() as session:
        return await session.get(RevokedSession, session_id) is not None
