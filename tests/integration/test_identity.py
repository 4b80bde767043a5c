"""Identity verification: normalisers, masks, ID hashing, attempts and locks (both databases)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from bot.store import audit, identity
from bot.store.engine import Database
from bot.store.identity import (
    LOCK_MINUTES,
    MAX_FAILED_ATTEMPTS,
    VerificationResult,
    active_lock,
    hash_national_id,
    is_valid_national_id,
    mask_mobile,
    mask_name,
    national_id_check_character,
    national_id_matches,
    normalize_id_last4,
    normalize_mobile,
    normalize_name,
    normalize_national_id,
    verify_identity,
)
from bot.store.models import Debtor, VerificationAttempt, VerificationLock
from tests.support.database import T0

ZHANG = ("张伟", "1234", "13800138000")
LI = ("李娜", "5678", "13900139001")
LOCK = timedelta(minutes=LOCK_MINUTES)

HOSTILE = [
    "",
    " ",
    "\x00",
    "'; DROP TABLE debtors; --",
    "1' OR '1'='1",
    "<script>alert(1)</script>",
    "<b>张伟</b>",
    "${jndi:ldap://x}",
    "张伟' --",
    "13800138000; DELETE FROM accounts",
    "\u202e0008310083\u202d",
    "😀😀",
    "x" * 10_000,
    "张" * 10_000,
    "1" * 10_000,
]


async def debtor_id(db: Database, mobile: str) -> int:
    async with db.session() as session:
        query = sa.select(Debtor.id).where(Debtor.mobile == mobile)
        return (await session.execute(query)).scalar_one()


async def attempts(db: Database) -> list[tuple[str, int | None, bool]]:
    async with db.session() as session:
        query = sa.select(
            VerificationAttempt.conversation_id,
            VerificationAttempt.debtor_id,
            VerificationAttempt.succeeded,
        ).order_by(VerificationAttempt.id)
        return [tuple(row) for row in (await session.execute(query)).all()]


async def fail(db: Database, conversation: str, times: int, now=T0, details=ZHANG) -> list:
    """Fail `times` times with a wrong ID ending for `details`' debtor."""
    name, _, mobile = details
    return [
        await verify_identity(db, conversation, name, "0000", mobile, now=now) for _ in range(times)
    ]


# --- normalisers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("张伟", "张伟"),
        (" 张 伟 ", "张伟"),
        ("张\u3000伟", "张伟"),
        ("欧阳娜娜", "欧阳娜娜"),
        ("阿卜杜拉·买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉•买买提", "阿卜杜拉·买买提"),
        ("john smith", "JOHN SMITH"),
        ("  Mary-Jane   O'Neil ", "MARY-JANE O'NEIL"),
        ("ＪＯＨＮ", "JOHN"),
        ("张", None),
        ("张" * 21, None),
        ("张伟1", None),
        ("张伟A", None),
        ("·张伟", None),
        ("J", None),
        ("张伟!", None),
    ],
)
def test_normalize_name(text: str, expected: str | None) -> None:
    assert normalize_name(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234", "1234"),
        (" 123x ", "123X"),
        ("123X", "123X"),
        ("１２３４", "1234"),
        ("12 34", "1234"),
        ("123", None),
        ("12345", None),
        ("X123", None),
        ("12X4", None),
        ("abcd", None),
        ("١٢٣٤", None),
    ],
)
def test_normalize_id_last4(text: str, expected: str | None) -> None:
    assert normalize_id_last4(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("+86-13800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("12800138000", None),
        ("1380013800", None),
        ("138001380001", None),
        ("+8612800138000", None),
        ("86138001380", None),
        ("1380013800O", None),
        ("(138)00138000", None),
    ],
)
def test_normalize_mobile(text: str, expected: str | None) -> None:
    assert normalize_mobile(text) == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_normalizers_return_none_on_hostile_input(text: str) -> None:
    assert normalize_name(text) is None
    assert normalize_id_last4(text) is None
    assert normalize_mobile(text) is None
    assert normalize_national_id(text) is None


@pytest.mark.parametrize("value", [None, 1234, 13800138000, b"1234", ["张伟"], {"a": 1}])
def test_normalizers_return_none_on_non_text(value: object) -> None:
    for normalize in (normalize_name, normalize_id_last4, normalize_mobile, normalize_national_id):
        assert normalize(value) is None


@given(st.text(max_size=300))
def test_normalizers_never_raise_and_return_valid_values(text: str) -> None:
    name = normalize_name(text)
    assert name is None or 2 <= len(name) <= 60
    last4 = normalize_id_last4(text)
    assert last4 is None or (len(last4) == 4 and last4[:3].isdigit())
    mobile = normalize_mobile(text)
    assert mobile is None or (len(mobile) == 11 and mobile.isdigit() and mobile[0] == "1")


def test_masks() -> None:
    assert mask_mobile("13800138000") == "138****8000"
    assert mask_mobile("+86 138-0013-8000") == "138****8000"
    assert mask_mobile("<script>") == "***"
    assert mask_name("张伟") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("JOHN SMITH") == "J*** *****"
    assert mask_name("") == ""
    assert len(mask_name("x" * 10_000)) == identity.MAX_INPUT_CHARS


# --- national IDs --------------------------------------------------------------------------------


def test_check_character_follows_gb_11643() -> None:
    # The standard's own example, and one whose check character is X.
    assert national_id_check_character("11010519491231002") == "X"
    assert national_id_check_character("44052418800101001") == "4"
    assert is_valid_national_id("11010519491231002X")
    assert is_valid_national_id("11010519491231002x")
    assert not is_valid_national_id("110105194912310021")
    assert not is_valid_national_id("110101199003071234")  # a demo ID: made up
    with pytest.raises(ValueError):
        national_id_check_character("1234")


def test_national_id_hash_is_salted_scrypt() -> None:
    stored = hash_national_id("110101199003071234")
    scheme, salt_hex, hash_hex = stored.split("$")
    assert scheme == "scrypt"
    assert len(bytes.fromhex(salt_hex)) == 16
    expected = hashlib.scrypt(
        b"110101199003071234", salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1, dklen=32
    )
    assert bytes.fromhex(hash_hex) == expected
    assert hash_national_id("110101199003071234") != stored  # a new salt every time
    assert national_id_matches(stored, "110101199003071234")
    assert national_id_matches(stored, " 110101199003071234 ")
    assert not national_id_matches(stored, "110101199003071235")
    assert not national_id_matches(stored, "garbage")
    assert not national_id_matches("scrypt$zz$zz", "110101199003071234")
    assert not national_id_matches("md5$00$00", "110101199003071234")
    with pytest.raises(ValueError):
        hash_national_id("1234")


# --- verification ------------------------------------------------------------------------------


async def test_matching_details_verify(db: Database) -> None:
    result = await verify_identity(db, "c1", *ZHANG, now=T0)
    assert result == VerificationResult("verified", await debtor_id(db, ZHANG[2]), 3, None)
    assert result.verified
    tolerant = await verify_identity(db, "c2", " 张 伟", "1234", "+86 138-0013-8000", now=T0)
    assert tolerant.status == "verified"
    li = await verify_identity(db, "c3", *LI, now=T0)
    assert li.debtor_id == await debtor_id(db, LI[2])
    assert [entry.action for entry in await audit.entries(db)] == ["verification_succeeded"] * 3
    zhang = result.debtor_id
    assert await attempts(db) == [
        ("c1", zhang, True),
        ("c2", zhang, True),
        ("c3", li.debtor_id, True),
    ]


WRONG_DETAILS = [
    ("张伟", "1235", "13800138000"),
    ("张玮", "1234", "13800138000"),
    ("张伟", "1234", "13800138001"),
    ("李娜", "1234", "13800138000"),
    ("张伟", "5678", "13900139001"),
    ("", "", ""),
    ("'; DROP TABLE debtors; --", "1234", "13800138000"),
    ("张伟", "1234", "<b>13800138000</b>"),
]


async def test_any_wrong_detail_is_a_mismatch(db: Database) -> None:
    for hour, details in enumerate(WRONG_DETAILS):
        # An hour apart, so that no attempt counts towards another's lock.
        now = T0 + timedelta(hours=hour)
        result = await verify_identity(db, f"c{hour}", *details, now=now)
        assert result == VerificationResult("mismatch", None, MAX_FAILED_ATTEMPTS - 1, None)
    entries = await audit.entries(db)
    assert [entry.action for entry in entries] == ["verification_failed"] * len(WRONG_DETAILS)


async def test_three_failures_lock_the_conversation(db: Database) -> None:
    results = await fail(db, "c1", 3)
    assert [(r.status, r.attempts_left) for r in results] == [
        ("mismatch", 2),
        ("mismatch", 1),
        ("locked", 0),
    ]
    assert results[2].locked_until == T0 + LOCK
    # Locked whatever the details: the right ones, wrong ones, another debtor's.
    for details in (ZHANG, ("张伟", "0000", "13800138000"), LI, ("", "", "")):
        later = T0 + timedelta(minutes=10)
        result = await verify_identity(db, "c1", *details, now=later)
        assert result == VerificationResult("locked", None, 0, T0 + LOCK)
    assert await active_lock(db, "c1", now=T0) == T0 + LOCK
    actions = [entry.action for entry in await audit.entries(db, conversation_id="c1")]
    assert (
        actions
        == ["verification_failed"] * 3 + ["verification_locked"] + ["verification_blocked"] * 4
    )
    # Refused calls are not attempts.
    assert len(await attempts(db)) == 3


async def test_lock_survives_a_restart(db: Database) -> None:
    await fail(db, "c1", 3)
    await db.dispose()
    restarted = Database(db.url)
    try:
        result = await verify_identity(restarted, "c1", *ZHANG, now=T0 + timedelta(minutes=29))
        assert result.status == "locked"
        assert await active_lock(restarted, "c1", now=T0 + timedelta(minutes=29)) == T0 + LOCK
    finally:
        await restarted.dispose()


async def test_failures_for_one_debtor_lock_them_across_conversations(db: Database) -> None:
    zhang = await debtor_id(db, ZHANG[2])
    first = await fail(db, "c1", 1)
    second = await fail(db, "c2", 1)
    third = await fail(db, "c3", 1)
    # Each conversation is answered from its own failures only: a stranger cannot
    # learn from the answers that the details belong to a customer.
    assert [r.status for r in first + second + third] == ["mismatch"] * 3
    assert [r.attempts_left for r in first + second + third] == [2, 2, 2]
    # A fourth conversation cannot verify 张伟, even with the right details, and is
    # told exactly what wrong details get...
    refused = await verify_identity(db, "c4", *ZHANG, now=T0)
    assert (refused.status, refused.attempts_left, refused.debtor_id) == ("mismatch", 2, None)
    assert await active_lock(db, "c-other", debtor_id=zhang, now=T0) == T0 + LOCK
    # ...but can verify someone else, and c1 to c3 are not locked themselves.
    assert (await verify_identity(db, "c4", *LI, now=T0)).status == "verified"
    assert await active_lock(db, "c1", now=T0) is None
    assert await active_lock(db, "c3", now=T0) is None
    async with db.session() as session:
        locks = (await session.execute(sa.select(VerificationLock))).scalars().all()
    assert [(lock.conversation_id, lock.debtor_id) for lock in locks] == [("", zhang)]


async def test_lock_expires_after_thirty_minutes(db: Database) -> None:
    await fail(db, "c1", 3)
    just_before = T0 + LOCK - timedelta(seconds=1)
    assert (await verify_identity(db, "c1", *ZHANG, now=just_before)).status == "locked"
    assert await active_lock(db, "c1", now=T0 + LOCK) is None
    result = await verify_identity(db, "c1", *ZHANG, now=T0 + LOCK)
    assert result.status == "verified"


async def test_after_a_lock_expires_three_new_failures_are_needed(db: Database) -> None:
    await fail(db, "c1", 3)
    after = T0 + LOCK + timedelta(seconds=1)
    results = await fail(db, "c1", 3, now=after)
    assert [r.status for r in results] == ["mismatch", "mismatch", "locked"]
    assert results[2].locked_until == after + LOCK


async def test_failures_older_than_the_window_do_not_count(db: Database) -> None:
    await fail(db, "c1", 2, now=T0)
    later = T0 + LOCK + timedelta(minutes=1)
    results = await fail(db, "c1", 2, now=later)
    assert [(r.status, r.attempts_left) for r in results] == [("mismatch", 2), ("mismatch", 1)]


async def test_success_does_not_unlock_or_reset(db: Database) -> None:
    await fail(db, "c1", 3, details=("某人", "0000", "13312345678"))  # nobody on file
    assert (await verify_identity(db, "c1", *ZHANG, now=T0)).status == "locked"
    assert (await verify_identity(db, "c2", *ZHANG, now=T0)).status == "verified"
    assert (await verify_identity(db, "c1", *ZHANG, now=T0)).status == "locked"
    # Failures before a success still count towards the debtor's lock.
    await fail(db, "c5", 1)
    assert (await verify_identity(db, "c6", *ZHANG, now=T0)).status == "verified"
    await fail(db, "c7", 1)
    await fail(db, "c8", 1)  # the third failure for 张伟: he is locked out
    assert (await verify_identity(db, "c9", *ZHANG, now=T0)).status == "mismatch"


async def test_attempts_point_at_the_debtor_the_details_matched(db: Database) -> None:
    zhang, li = await debtor_id(db, ZHANG[2]), await debtor_id(db, LI[2])
    await verify_identity(db, "a", "张伟", "0000", "13800138000", now=T0)  # name + mobile
    await verify_identity(db, "b", "张伟", "1234", "13312345678", now=T0)  # name + last4
    await verify_identity(db, "c", "某人", "0000", "13800138000", now=T0)  # mobile only
    await verify_identity(db, "d", "张伟", "5678", "13900139001", now=T0)  # mobile (李娜)
    await verify_identity(db, "e", "李娜", "5678", "13800138000", now=T0)  # name + last4 first
    await verify_identity(db, "f", "某人", "1234", "13312345678", now=T0)  # nobody
    assert await attempts(db) == [
        ("a", zhang, False),
        ("b", zhang, False),
        ("c", zhang, False),
        ("d", li, False),
        ("e", li, False),
        ("f", None, False),
    ]


async def test_invalid_input_counts_as_a_failure(db: Database) -> None:
    for text in ("", "<script>", "x" * 10_000):
        await verify_identity(db, "c1", text, text, text, now=T0)
    assert (await verify_identity(db, "c1", *ZHANG, now=T0)).status == "locked"


async def test_raw_identity_data_never_reaches_the_log(db: Database) -> None:
    await verify_identity(db, "c1", *ZHANG, now=T0)
    await fail(db, "c2", 3)
    await verify_identity(db, "c2", *ZHANG, now=T0)
    entries = await audit.entries(db)
    assert len(entries) == 6
    for entry in entries:
        text = str(dict(entry.details))
        assert "13800138000" not in text
        assert "1234" not in text and "0000" not in text
        assert "张伟" not in text
    first = dict(entries[0].details)
    assert first == {
        "id_last4_given": True,
        "matched": ["name", "id_last4", "mobile"],
        "mobile": "138****8000",
        "name": "张*",
        "debtor_locked": False,
    }


async def test_verification_refuses_naive_times_and_bad_conversations(db: Database) -> None:
    with pytest.raises(ValueError):
        await verify_identity(db, "c1", *ZHANG, now=T0.replace(tzinfo=None))
    for conversation in ("", "x" * 256):
        with pytest.raises(ValueError):
            await verify_identity(db, conversation, *ZHANG, now=T0)
    assert await attempts(db) == []


async def test_active_lock_reports_none_without_a_lock(db: Database) -> None:
    assert await active_lock(db, "c1") is None
    assert await active_lock(db, "c1", debtor_id=1, now=T0) is None
    await fail(db, "c1", 3)
    until = await active_lock(db, "c1", now=T0)
    assert until == T0 + LOCK
    assert until is not None and until.tzinfo == timezone.utc


async def test_parallel_attempts_get_no_extra_tries(db: Database) -> None:
    results = await asyncio.gather(
        *(verify_identity(db, f"c{n % 2}", "张伟", "0000", "13800138000", now=T0) for n in range(8))
    )
    statuses = sorted(result.status for result in results)
    # Each of the two conversations gets exactly three tries, whatever the order.
    assert statuses == ["locked"] * 4 + ["mismatch"] * 4
    assert len(await attempts(db)) == 2 * MAX_FAILED_ATTEMPTS
    async with db.session() as session:
        query = sa.select(sa.func.count(VerificationLock.id)).where(
            VerificationLock.conversation_id.in_(["c0", "c1"])
        )
        locks = (await session.execute(query)).scalar_one()
    assert locks == 2
