"""Payments against an agreement's schedule: validated, applied in due-date order, judged.

Pure: the store gives the schedule and the payments, `settle` says what each
installment has been paid, which are late, and whether the agreement is
completed (for a promise: kept) or broken on a given day. The answer depends
only on the payments and the day, never on the order they arrived in or on how
a sum was split into payments.

Rules (`grace_days` from the policy's `lifecycle` section):
- the payments made up to the day (`paid_on`), oldest first, fill the
  installments in due-date order, each up to its amount; what is left over is
  not applied;
- an installment not fully paid after its due date is `late`;
- an installment not covered by the payments made up to `grace_days` after its
  due date breaks the agreement the next day, even if it is paid later; a
  broken agreement keeps what was paid up to that day, nothing after;
- an agreement whose payments reached its total before any breach is completed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

ZERO = Decimal("0.00")
#: The largest amount a money column holds.
MAX_AMOUNT = Decimal("999999999999.99")
COLUMNS = ("account_no", "paid_on", "amount", "reference")

ACCOUNT_NO = re.compile(r"[0-9A-Za-z-]{4,34}", re.ASCII)
REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}", re.ASCII)
AMOUNT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?", re.ASCII)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

#: Why a payment row is refused, with what the operator reads.
ROW_ERRORS = {
    "missing_field": "a field is missing or empty",
    "bad_account_no": "account_no must be 4-34 letters, digits or '-'",
    "unknown_account": "no account has this account_no",
    "bad_date": "paid_on must be a date YYYY-MM-DD",
    "future_date": "paid_on is after today",
    "bad_amount": "amount must be a decimal number like 1234.50 (at most 2 decimals)",
    "negative_amount": "amount must be more than 0",
    "amount_too_large": "amount is above 999999999999.99",
    "bad_reference": "reference must be 1-64 of A-Z a-z 0-9 _ . : / - (starting alphanumeric)",
    "duplicate_reference": "this reference is already on file (or earlier in the input) with"
    " another account, date or amount",
    "bad_columns": "a row must have exactly the columns account_no,paid_on,amount,reference",
}


@dataclass(frozen=True)
class PaymentRow:
    """One valid payment as reported, before its account is looked up."""

    account_no: str
    paid_on: date
    amount: Decimal
    reference: str


@dataclass(frozen=True)
class RowError:
    """A refused row: where (line of a file, index of a pushed list), which, why."""

    position: int
    reference: str | None
    code: str

    @property
    def message(self) -> str:
        return ROW_ERRORS[self.code]


def parse_amount(value: object) -> Decimal | str:
    """`value` as a positive two-decimal amount, or the error code.

    Text like `1234.5` or `1234.50`; an `int`, or a `Decimal` parsed exactly from
    JSON. Never a float, a sign, an exponent, thousands separators or NaN.
    """
    if isinstance(value, bool) or isinstance(value, float):
        return "bad_amount"
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            return "bad_amount"
        value = format(value, "f")
    if not isinstance(value, str):
        return "bad_amount"
    text = value.strip()
    if text.startswith("-") and AMOUNT.fullmatch(text[1:]):
        return "negative_amount"
    if not AMOUNT.fullmatch(text):
        if re.fullmatch(r"[0-9]{13,}(?:\.[0-9]{1,2})?", text, re.ASCII):
            return "amount_too_large"
        return "bad_amount"
    try:
        amount = Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover (the pattern allows only digits)
        return "bad_amount"
    if amount <= 0:
        return "negative_amount"
    if amount > MAX_AMOUNT:
        return "amount_too_large"
    return amount


def parse_day(value: object) -> date | None:
    """`YYYY-MM-DD` as a date, or None."""
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value.strip()):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def validate_row(position: int, fields: Mapping[str, object], today: date) -> PaymentRow | RowError:
    """One reported payment (the four columns as text or JSON values), checked on its own."""
    raw_reference = fields.get("reference")
    reference = raw_reference.strip() if isinstance(raw_reference, str) else None
    shown = reference[:64] if reference and REFERENCE.fullmatch(reference) else None

    def error(code: str) -> RowError:
        return RowError(position, shown, code)

    for column in COLUMNS:
        value = fields.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            return error("missing_field")
    if reference is None or not REFERENCE.fullmatch(reference):
        return error("bad_reference")
    account_no = fields["account_no"]
    if not isinstance(account_no, str) or not ACCOUNT_NO.fullmatch(account_no.strip()):
        return error("bad_account_no")
    paid_on = parse_day(fields["paid_on"])
    if paid_on is None:
        return error("bad_date")
    if paid_on > today:
        return error("future_date")
    amount = parse_amount(fields["amount"])
    if isinstance(amount, str):
        return error(amount)
    return PaymentRow(account_no.strip(), paid_on, amount, reference)


# --- applying payments ----------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """One installment of a schedule."""

    number: int
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class Paid:
    """A payment (or the part of it still free for this agreement)."""

    reference: str
    paid_on: date
    amount: Decimal


@dataclass(frozen=True)
class InstallmentState:
    number: int
    paid_amount: Decimal
    #: `due`, `paid` or `late`.
    status: str


@dataclass(frozen=True)
class Settlement:
    """An agreement as of one day: installments, allocations and its state."""

    installments: tuple[InstallmentState, ...]
    #: (payment reference, installment number, amount), in the order applied.
    allocations: tuple[tuple[str, int, Decimal], ...]
    #: `active`, `completed` or `broken`.
    state: str
    #: The first day the agreement stood broken (None unless broken).
    broken_on: date | None
    #: The installment whose shortfall broke it.
    broken_by: int | None
    #: The day its payments reached the total (None unless completed).
    completed_on: date | None

    @property
    def paid_total(self) -> Decimal:
        return sum((i.paid_amount for i in self.installments), ZERO)


def _ordered(schedule: Sequence[Due]) -> list[Due]:
    return sorted(schedule, key=lambda due: (due.due_date, due.number))


def settle(
    schedule: Sequence[Due], payments: Sequence[Paid], today: date, grace_days: int
) -> Settlement:
    """The state of an agreement with `schedule` on `today`, given `payments`.

    Payments after `today` are ignored; the others are applied oldest first
    (ties by reference), so that the same payments always give the same answer.
    A broken agreement is shown as it stood the day it broke: what was paid
    after that day is not applied to it.
    """
    if grace_days < 0:
        raise ValueError("grace_days must not be negative")
    dues = _ordered(schedule)
    made = sorted(
        (p for p in payments if p.paid_on <= today and p.amount > 0),
        key=lambda p: (p.paid_on, p.reference),
    )
    broken_on, broken_by = _breach(dues, made, today, grace_days)
    as_of = today if broken_on is None else broken_on
    paid = {due.number: ZERO for due in dues}
    allocations: list[tuple[str, int, Decimal]] = []
    slot = 0
    completed_on: date | None = None
    for payment in (p for p in made if p.paid_on <= as_of):
        left = payment.amount
        while left > 0 and slot < len(dues):
            due = dues[slot]
            part = min(left, due.amount - paid[due.number])
            paid[due.number] += part
            left -= part
            allocations.append((payment.reference, due.number, part))
            if paid[due.number] == due.amount:
                slot += 1
        if dues and slot == len(dues) and completed_on is None:
            completed_on = payment.paid_on
    if broken_on is not None:
        state, completed_on = "broken", None
    elif completed_on is not None:
        state = "completed"
    else:
        state = "active"
    states = tuple(
        InstallmentState(
            due.number,
            paid[due.number],
            "paid"
            if paid[due.number] == due.amount
            else ("late" if as_of > due.due_date else "due"),
        )
        for due in sorted(dues, key=lambda due: due.number)
    )
    return Settlement(states, tuple(allocations), state, broken_on, broken_by, completed_on)


def _breach(
    dues: list[Due], made: list[Paid], today: date, grace_days: int
) -> tuple[date | None, int | None]:
    """The first day an installment stood uncovered past its grace days, and which one."""
    owed = ZERO
    for due in dues:
        owed += due.amount
        deadline = due.due_date + timedelta(days=grace_days)
        if today <= deadline:
            return None, None
        covered = sum((p.amount for p in made if p.paid_on <= deadline), ZERO)
        if covered < owed:
            return deadline + timedelta(days=1), due.number
    return None, None
