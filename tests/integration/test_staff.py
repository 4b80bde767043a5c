"""Staff accounts: argon2 hashes, validation and rate-limited sign-in (SQLite and PostgreSQL).

Also home of `cheap_argon2`, used by the console tests too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from bot.console.texts import STAFF_ERRORS, staff_error
from bot.store import audit, staff
from bot.store.engine import Database
from bot.store.models import SignInFailure, StaffMember, utcnow
from bot.store.staff import StaffInputError
from tests.support.database import table_text
from tests.support.staff import cheap_argon2

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_argon2() -> Iterator[None]:
    with cheap_argon2():
        yield


async def _failures(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(sa.select(SignInFailure.key))).scalars())


async def test_create_staff_stores_an_argon2_hash_never_the_password(db: Database) -> None:
    member = await staff.create_staff(db, "li.na", "李娜", PASSWORD, "negotiator")
    assert member.id and member.active and member.role == "negotiator"
    assert member.password_hash.startswith("$argon2id$")
    assert PASSWORD not in member.password_hash
    assert PASSWORD not in await table_text(db)
    stored = await staff.get_staff(db, member.id)
    assert stored is not None and stored.display_name == "李娜"
    assert [e.action for e in await audit.entries(db)][-1] == "staff_created"


@pytest.mark.parametrize(
    ("username", "name", "password", "role", "message"),
    [
        ("Li", "李娜", PASSWORD, "negotiator", "bad_username"),
        ("a", "李娜", PASSWORD, "negotiator", "bad_username"),
        ("li na", "李娜", PASSWORD, "negotiator", "bad_username"),
        ("x" * 65, "李娜", PASSWORD, "negotiator", "bad_username"),
        ("lina", "李娜", "short", "negotiator", "password_too_short"),
        ("lina", "李娜", "123456789", "negotiator", "password_too_short"),
        ("lina", "  ", PASSWORD, "negotiator", "bad_display_name"),
        ("lina", "李娜", PASSWORD, "admin", "unknown_role"),
    ],
)
async def test_create_staff_refuses_bad_input(
    db: Database, username: str, name: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(StaffInputError, match=f"^{message}$"):
        await staff.create_staff(db, username, name, password, role)
    async with db.session() as session:
        assert (await session.execute(sa.select(sa.func.count(StaffMember.id)))).scalar() == 0


async def test_create_staff_refuses_a_taken_username(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    with pytest.raises(StaffInputError, match="^username_taken$"):
        await staff.create_staff(db, "lina", "另一个李娜", PASSWORD, "supervisor")


async def test_authenticate_succeeds_with_the_right_password_only(db: Database) -> None:
    created = await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    member = await staff.authenticate(db, "LiNa ", PASSWORD, "10.0.0.1")
    assert member is not None and member.id == created.id
    assert await staff.authenticate(db, "lina", PASSWORD + "x", "10.0.0.1") is None
    assert await staff.authenticate(db, "nobody", PASSWORD, "10.0.0.1") is None
    entries = [(e.actor, e.action, dict(e.details)) for e in await audit.entries(db)]
    assert ("staff:lina", "staff_signed_in", {"remote_address": "10.0.0.1"}) in entries
    failed = [d for actor, action, d in entries if action == "staff_sign_in_failed"]
    assert [d["why"] for d in failed] == ["wrong_password", "unknown_user"]
    assert all(PASSWORD not in str(d) for d in failed)


async def test_a_deactivated_member_cannot_sign_in(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    assert await staff.set_active(db, "lina", False)
    assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is None
    assert not await staff.set_active(db, "nobody", False)


async def test_sixth_attempt_is_refused_even_with_the_right_password(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    for _ in range(staff.MAX_USER_FAILURES):
        assert await staff.authenticate(db, "lina", "wrong password", "10.0.0.1") is None
    with pytest.raises(staff.SignInLimited):
        await staff.authenticate(db, "lina", PASSWORD, "10.0.0.2")
    # Another user on the same address is not affected.
    await staff.create_staff(db, "wang", "王强", PASSWORD, "negotiator")
    assert await staff.authenticate(db, "wang", PASSWORD, "10.0.0.1") is not None
    limited = [e for e in await audit.entries(db) if e.details.get("why") == "limited"]
    assert len(limited) == 1


async def test_an_address_is_limited_after_twenty_failures(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    for number in range(staff.MAX_ADDRESS_FAILURES):
        assert await staff.authenticate(db, f"user{number}", "guess", "10.9.9.9") is None
    # Over its limit, the address is refused anything but the right password ...
    for username, password in (("lina", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(staff.SignInLimited):
            await staff.authenticate(db, username, password, "10.9.9.9")
    # ... which still signs in: the address may be a proxy that colleagues share.
    assert await staff.authenticate(db, "lina", PASSWORD, "10.9.9.9") is not None
    assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is not None
    refused = [e.details for e in await audit.entries(db) if e.details.get("refused")]
    assert [(d["why"], d["refused"]) for d in refused] == [
        ("wrong_password", "address_limited"),
        ("unknown_user", "address_limited"),
    ]


async def test_guesses_from_a_limited_address_still_count_for_the_user_name(
    db: Database,
) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    for number in range(staff.MAX_ADDRESS_FAILURES):
        assert await staff.authenticate(db, f"user{number}", "guess", "10.9.9.9") is None
    for _ in range(staff.MAX_USER_FAILURES):
        with pytest.raises(staff.SignInLimited):
            await staff.authenticate(db, "lina", "wrong password", "10.9.9.9")
    # The user name is over its own limit now: the right password is refused, anywhere.
    for address in ("10.9.9.9", "10.0.0.1"):
        with pytest.raises(staff.SignInLimited):
            await staff.authenticate(db, "lina", PASSWORD, address)


async def test_old_failures_do_not_count(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    old = utcnow() - staff.FAILURE_WINDOW - timedelta(minutes=1)
    async with db.session() as session:
        session.add_all(SignInFailure(key="user:lina", created_at=old) for _ in range(10))
        await session.commit()
    assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is not None
    assert await _failures(db) == []


async def test_success_forgets_the_users_failures(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    for _ in range(2):
        for _ in range(staff.MAX_USER_FAILURES - 1):
            assert await staff.authenticate(db, "lina", "wrong password", "10.0.0.1") is None
        assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is not None
    assert set(await _failures(db)) == {"addr:10.0.0.1"}


async def test_unknown_user_costs_a_hash_verification_like_a_wrong_password(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    checked: list[str] = []
    verify = staff._verify

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(staff, "_verify", counting)
    assert await staff.authenticate(db, "nobody", "whatever", "10.0.0.1") is None
    assert await staff.authenticate(db, "lina", "whatever", "10.0.0.1") is None
    assert len(checked) == 2 and all(h.startswith("$argon2id$") for h in checked)
    # The dummy hash has the current parameters, so it costs what a real one does.
    assert checked[0].split("$")[3] == checked[1].split("$")[3]


async def test_sign_in_rehashes_a_password_hashed_with_old_parameters(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    staff.HASHER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    member = await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1")
    assert member is not None
    stored = await staff.get_staff_by_username(db, "lina")
    assert stored is not None and "m=16,t=2" in stored.password_hash
    assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is not None


async def test_set_password_replaces_the_hash(db: Database) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    await staff.set_password(db, "lina", "another long password")
    assert await staff.authenticate(db, "lina", PASSWORD, "10.0.0.1") is None
    assert await staff.authenticate(db, "lina", "another long password", "10.0.0.1") is not None
    with pytest.raises(StaffInputError, match="^unknown_username$"):
        await staff.set_password(db, "nobody", "another long password")
    with pytest.raises(StaffInputError, match="^password_too_short$"):
        await staff.set_password(db, "lina", "short")


def test_real_parameters_are_argon2id() -> None:
    assert staff.PasswordHasher().hash("x" * 10).startswith("$argon2id$v=19$m=65536,t=3")


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (StaffInputError("bad_username"), "用户名须为 2-64 个小写字母、数字、下划线、点或连字符"),
        (StaffInputError("password_too_short", length=12), "密码至少需要 12 个字符"),
        (
            StaffInputError("unknown_role", roles=("negotiator", "supervisor")),
            "角色须为 negotiator 或 supervisor",
        ),
        (StaffInputError("username_taken", username="lina"), "用户名 lina 已存在"),
        (StaffInputError("unknown_username", username="nobody"), "用户名 nobody 不存在"),
    ],
)
def test_the_console_words_each_refusal(error: StaffInputError, sentence: str) -> None:
    assert staff_error(error) == sentence


def test_every_refusal_code_has_a_sentence() -> None:
    import re

    from bot.store import staff as module

    source = open(module.__file__, encoding="utf-8").read()
    codes = set(re.findall(r'StaffInputError\("([a-z_]+)"', source))
    assert codes and codes <= set(STAFF_ERRORS)


async def test_parallel_wrong_guesses_get_no_more_than_the_limit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff.create_staff(db, "lina", "李娜", PASSWORD, "negotiator")
    checked: list[str] = []
    verify = staff._verify

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(staff, "_verify", counting)

    async def guess(number: int) -> str:
        try:
            member = await staff.authenticate(db, "lina", f"guess {number}", f"10.1.0.{number}")
        except staff.SignInLimited:
            return "limited"
        assert member is None
        return "wrong"

    outcomes = await asyncio.gather(*(guess(number) for number in range(20)))
    assert len(checked) == staff.MAX_USER_FAILURES
    assert outcomes.count("wrong") == len(checked)
    assert outcomes.count("limited") == 20 - len(checked)
    assert len([key for key in await _failures(db) if key == "user:lina"]) == len(checked)
