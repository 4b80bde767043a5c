"""Demo and synthetic debtors for development, demos and load tests.

`DEMO_DEBTORS` are the five people the demo script uses. `synthetic_debtors`
makes any number of plausible debtors, the same ones for the same seed. Seeding
skips a debtor whose mobile is already on file, so it can be run repeatedly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from bot.domain.vocabulary import PRODUCTS
from bot.store.engine import Database
from bot.store.identity import (
    hash_national_id,
    national_id_check_character,
    normalize_mobile,
    normalize_name,
    normalize_national_id,
)
from bot.store.models import Account, Debtor, to_money


@dataclass(frozen=True)
class AccountRecord:
    """An account to create; amounts are `Decimal` CNY."""

    product: str
    outstanding_principal: Decimal
    overdue_principal: Decimal
    interest: Decimal
    penalty_fees: Decimal
    days_past_due: int
    missed_installments: int = 0
    installment_amount: Decimal | None = None
    broken_plans: int = 0
    currency: str = "CNY"
    status: str = "overdue"
    collections_hold: bool = False
    #: The bank's account number the payment feed uses.
    account_no: str | None = None

    @property
    def overdue_total(self) -> Decimal:
        return self.overdue_principal + self.interest + self.penalty_fees


@dataclass(frozen=True)
class DebtorRecord:
    """A debtor to create, with the full national ID (only its hash is stored)."""

    full_name: str
    national_id: str
    mobile: str
    accounts: tuple[AccountRecord, ...]


def _card(
    principal: str, interest: str, fees: str, days: int, broken: int = 0, account_no: str = ""
) -> tuple[AccountRecord, ...]:
    amount = Decimal(principal)
    return (
        AccountRecord(
            product="credit_card",
            outstanding_principal=amount,
            overdue_principal=amount,
            interest=Decimal(interest),
            penalty_fees=Decimal(fees),
            days_past_due=days,
            broken_plans=broken,
            account_no=account_no or None,
        ),
    )


DEMO_DEBTORS: tuple[DebtorRecord, ...] = (
    DebtorRecord(
        "张伟",
        "110101199003071234",
        "13800138000",
        _card("20000.00", "2860.00", "700.00", 45, account_no="6222021001000001"),
    ),
    DebtorRecord(
        "李娜",
        "310104198807155678",
        "13900139001",
        (
            AccountRecord(
                product="consumer_loan",
                outstanding_principal=Decimal("80000.00"),
                overdue_principal=Decimal("6400.00"),
                interest=Decimal("0.00"),
                penalty_fees=Decimal("192.00"),
                days_past_due=62,
                missed_installments=2,
                installment_amount=Decimal("3200.00"),
                account_no="6222021001000002",
            ),
        ),
    ),
    DebtorRecord(
        "王芳",
        "440106197512204321",
        "13700137002",
        _card("150000.00", "31500.00", "4200.00", 210, broken=2, account_no="6222021001000003"),
    ),
    DebtorRecord(
        "刘洋",
        "510105199512018765",
        "13600136003",
        _card("3000.00", "45.00", "0.00", 5, account_no="6222021001000004"),
    ),
    DebtorRecord(
        "陈静",
        "330102198202140026",
        "13500135004",
        _card("48000.00", "6100.00", "1500.00", 95, account_no="6222021001000005"),
    ),
)

DEMO_MOBILES = frozenset(debtor.mobile for debtor in DEMO_DEBTORS)

# --- synthetic debtors -------------------------------------------------------------------

#: Common single-character surnames, most frequent first.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
    "许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "慕容")
#: Common given names, one or two characters.
GIVEN_NAMES = (
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
    "明", "超", "霞", "平", "刚", "秀英", "桂英", "建华", "建国", "文辉", "玉兰", "鹏飞", "红梅",
    "晨曦", "浩然", "子涵", "欣怡", "佳琪", "思远", "嘉豪", "俊杰", "雨萱", "梓轩", "博文", "志强",
    "海燕", "春燕", "丹凤", "立新", "永刚", "金凤", "德明", "振华", "晓东", "晓燕", "淑珍", "建平",
    "亚男", "国庆", "秀兰", "婷婷", "丽娟", "宇航", "天佑", "雪梅",
)  # fmt: skip
#: County-level division codes (GB/T 2260) that start real national IDs.
REGION_CODES = (
    "110101", "110105", "120101", "130102", "140105", "210102", "220102", "230102", "310104",
    "310115", "320102", "320506", "330102", "330106", "340102", "350102", "360102", "370102",
    "410105", "420102", "430102", "440106", "440304", "450102", "500103", "510105", "520102",
    "530102", "610103", "620102",
)  # fmt: skip
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "166", "177", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "191", "198", "199",
)  # fmt: skip
#: Relative frequency of products among overdue accounts.
PRODUCT_WEIGHTS = {"credit_card": 60, "consumer_loan": 25, "car_loan": 10, "mortgage": 5}
#: (principal range in yuan, possible terms in months) of each loan product.
LOAN_TERMS = {
    "consumer_loan": ((10_000, 300_000), (12, 24, 36)),
    "car_loan": ((50_000, 400_000), (36, 60)),
    "mortgage": ((300_000, 3_000_000), (240, 360)),
}
CARD_PRINCIPAL_RANGE = (1_000, 200_000)
#: Credit card interest 0.05 % a day; overdue loan penalty interest 0.025 % a day.
CARD_DAILY_RATE = Decimal("0.0005")
LOAN_PENALTY_DAILY_RATE = Decimal("0.00025")
#: Late fee per missed month, as a share of the overdue principal.
MONTHLY_FEE_RATE = Decimal("0.005")
LOAN_FEE_RATE = Decimal("0.015")
MAX_DAYS_PAST_DUE = 720
BIRTH_YEARS = (1960, 2004)
SECOND_ACCOUNT_SHARE = 0.2
#: Debtors inserted per transaction.
BATCH_SIZE = 200


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _name(rng: random.Random) -> str:
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(SURNAMES)
    return surname + rng.choice(GIVEN_NAMES)


def _national_id(rng: random.Random) -> str:
    first, last = (date(year, 1, 1) for year in (BIRTH_YEARS[0], BIRTH_YEARS[1] + 1))
    birthday = first + timedelta(days=rng.randrange((last - first).days))
    first17 = f"{rng.choice(REGION_CODES)}{birthday:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + national_id_check_character(first17)


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _days_past_due(rng: random.Random) -> int:
    # Most overdue accounts are recent; a long tail reaches two years.
    bucket = rng.choices(((1, 30), (31, 90), (91, 180), (181, MAX_DAYS_PAST_DUE)), (45, 30, 15, 10))
    low, high = bucket[0]
    return rng.randint(low, high)


def _yuan(rng: random.Random, low: int, high: int) -> Decimal:
    """A log-uniform amount between `low` and `high` yuan, with cents."""
    cents = round(10 ** rng.uniform(math.log10(low), math.log10(high)) * 100)
    return Decimal(min(max(cents, low * 100), high * 100)) / 100


def _card_account(rng: random.Random) -> AccountRecord:
    days = _days_past_due(rng)
    principal = _cents(_yuan(rng, *CARD_PRINCIPAL_RANGE))
    months = days // 30 + 1
    return AccountRecord(
        product="credit_card",
        outstanding_principal=principal,
        overdue_principal=principal,
        interest=_cents(principal * CARD_DAILY_RATE * days),
        penalty_fees=_cents(principal * MONTHLY_FEE_RATE * min(months, 12)),
        days_past_due=days,
        broken_plans=_broken_plans(rng, days),
    )


def _loan_account(rng: random.Random, product: str) -> AccountRecord:
    (low, high), terms = LOAN_TERMS[product]
    term = rng.choice(terms)
    principal = _cents(_yuan(rng, low, high))
    installment = _cents(principal / term)
    days = _days_past_due(rng)
    missed = min(term, days // 30 + 1)
    paid = rng.randint(0, term - missed)
    overdue = installment * missed
    outstanding = max(overdue, principal - installment * paid)
    return AccountRecord(
        product=product,
        outstanding_principal=outstanding,
        overdue_principal=overdue,
        interest=_cents(overdue * LOAN_PENALTY_DAILY_RATE * days),
        penalty_fees=_cents(overdue * LOAN_FEE_RATE * missed),
        days_past_due=days,
        missed_installments=missed,
        installment_amount=installment,
        broken_plans=_broken_plans(rng, days),
    )


def _broken_plans(rng: random.Random, days_past_due: int) -> int:
    if days_past_due < 90 or rng.random() > 0.2:
        return 0
    return rng.randint(1, 3)


def _account(rng: random.Random, product: str) -> AccountRecord:
    return _card_account(rng) if product == "credit_card" else _loan_account(rng, product)


def synthetic_debtors(count: int, seed: int) -> list[DebtorRecord]:
    """`count` plausible debtors; the same `seed` gives the same debtors.

    National IDs carry a correct GB 11643 check character; mobiles are unique and
    never one of the demo debtors'.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    products, weights = zip(*PRODUCT_WEIGHTS.items(), strict=True)
    taken_mobiles, taken_ids = set(DEMO_MOBILES), {debtor.national_id for debtor in DEMO_DEBTORS}
    debtors = []
    for _ in range(count):
        mobile = _mobile(rng)
        while mobile in taken_mobiles:
            mobile = _mobile(rng)
        national_id = _national_id(rng)
        while national_id in taken_ids:
            national_id = _national_id(rng)
        taken_mobiles.add(mobile)
        taken_ids.add(national_id)
        chosen = rng.choices(products, weights)
        if rng.random() < SECOND_ACCOUNT_SHARE:
            chosen += rng.choices([p for p in products if p != chosen[0]])
        accounts = tuple(_account(rng, product) for product in chosen)
        debtors.append(DebtorRecord(_name(rng), national_id, mobile, accounts))
    return debtors


# --- seeding ------------------------------------------------------------------------------


def _debtor_row(record: DebtorRecord) -> Debtor:
    name = normalize_name(record.full_name)
    national_id = normalize_national_id(record.national_id)
    mobile = normalize_mobile(record.mobile)
    if name is None or national_id is None or mobile is None:
        raise ValueError(f"invalid debtor record for mobile {record.mobile[:3]}...")
    debtor = Debtor(
        full_name=name,
        national_id_hash=hash_national_id(national_id),
        national_id_last4=national_id[-4:],
        mobile=mobile,
    )
    for account in record.accounts:
        if account.product not in PRODUCTS:
            raise ValueError(f"unknown product {account.product!r}")
        debtor.accounts.append(
            Account(
                product=account.product,
                currency=account.currency,
                outstanding_principal=to_money(account.outstanding_principal),
                overdue_principal=to_money(account.overdue_principal),
                interest=to_money(account.interest),
                penalty_fees=to_money(account.penalty_fees),
                missed_installments=account.missed_installments,
                installment_amount=(
                    None
                    if account.installment_amount is None
                    else to_money(account.installment_amount)
                ),
                days_past_due=account.days_past_due,
                status=account.status,
                collections_hold=account.collections_hold,
                broken_plans=account.broken_plans,
                account_no=account.account_no,
            )
        )
    return debtor


async def insert_debtors(db: Database, records: Sequence[DebtorRecord]) -> int:
    """Insert the debtors whose mobile is not on file yet; returns how many were added.

    Commits every `BATCH_SIZE` debtors.
    """
    added = 0
    for start in range(0, len(records), BATCH_SIZE):
        batch = records[start : start + BATCH_SIZE]
        async with db.session() as session:
            mobiles = [record.mobile for record in batch]
            # Through the table: the class attribute is annotated as `str` for instances.
            query = sa.select(Debtor.mobile).where(Debtor.__table__.c.mobile.in_(mobiles))
            existing = set((await session.execute(query)).scalars().all())
            for record in batch:
                if record.mobile not in existing:
                    session.add(_debtor_row(record))
                    existing.add(record.mobile)
                    added += 1
            await session.commit()
    return added


async def seed_demo(db: Database) -> int:
    """Insert the demo debtors that are missing; returns how many were added.

    Demo accounts seeded before accounts had numbers get theirs.
    """
    added = await insert_debtors(db, DEMO_DEBTORS)
    async with db.session() as session:
        for record in DEMO_DEBTORS:
            for account in record.accounts:
                await session.execute(
                    sa.update(Account)
                    .where(
                        Account.__table__.c.account_no.is_(None),
                        Account.product == account.product,
                        Account.debtor_id
                        == sa.select(Debtor.id)
                        .where(Debtor.__table__.c.mobile == record.mobile)
                        .scalar_subquery(),
                    )
                    .values(account_no=account.account_no)
                    .execution_options(synchronize_session=False)
                )
        await session.commit()
    return added


async def seed_synthetic(db: Database, count: int, seed: int) -> int:
    """Insert `synthetic_debtors(count, seed)` that are missing; returns how many."""
    return await insert_debtors(db, synthetic_debtors(count, seed))
