"""Payments in: rows of a CSV file or of a pushed JSON list, checked and stored at once.

Every row is checked on its own (`bot.domain.payments.validate_row`), its
account looked up by `account_no` and its `reference` against what is on file.
The good rows are stored together in one transaction with one audit entry, and
the bad ones reported by position (the file's line, the list's index): after a
crash either all the good rows are there or none. A reference already on file
with the same account, date and amount is the same payment reported again and
changes nothing; with anything else it is refused.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.domain.payments import COLUMNS, PaymentRow, RowError, validate_row
from bot.store import audit
from bot.store.engine import Database
from bot.store.models import Account
from bot.store.payment_models import Payment

#: A longer line cannot be a payment (four short fields).
MAX_LINE_BYTES = 1024
#: Rows of one file or push; a larger feed is split.
MAX_ROWS = 200_000
#: References and account numbers looked up per query.
CHUNK = 500
IMPORT_ATTEMPTS = 3
ACCOUNTS = Account.__table__
PAYMENTS = Payment.__table__


class PaymentFileError(ValueError):
    """A file that cannot be read as a payments file at all; nothing was imported."""


@dataclass
class ImportResult:
    """What one import did."""

    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    def to_dict(self, position: str = "line") -> dict[str, Any]:
        """JSON-ready; each error names its `position` (`line` of a file, `index` of a list)."""
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "rejected": len(self.errors),
            "errors": [
                {
                    position: e.position,
                    "reference": e.reference,
                    "error": e.code,
                    "message": e.message,
                }
                for e in self.errors
            ],
        }


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of each line; text None for a line too long to be a payment."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(64 * 1024)
            yield number, None
            continue
        text = raw.decode("utf-8", errors="replace")
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield number, text.rstrip("\r\n")


def read_payments_file(
    stream: IO[bytes],
) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    """The rows of a payments CSV (header `account_no,paid_on,amount,reference`, any order).

    Returns the rows with their line numbers and the lines that are not rows of
    four fields. `PaymentFileError` for a missing or wrong header, or too many rows.
    """
    lines = _lines(stream)
    header: list[str] | None = None
    for _number, text in lines:
        if text is None:
            raise PaymentFileError("the first line is not a header: it is far too long")
        if text.strip():
            header = [name.strip().lower() for name in next(csv.reader([text]))]
            break
    if header is None:
        raise PaymentFileError("the file is empty: expected the header " + ",".join(COLUMNS))
    if sorted(header) != sorted(COLUMNS):
        raise PaymentFileError(
            "the header must name exactly the columns " + ",".join(COLUMNS) + f" (got {header})"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    bad: list[RowError] = []
    for number, text in lines:
        if text is not None and not text.strip():
            continue
        if len(rows) + len(bad) >= MAX_ROWS:
            raise PaymentFileError(f"more than {MAX_ROWS} rows: split the file")
        fields = next(csv.reader([text]), []) if text is not None and "\0" not in text else None
        if fields is None or len(fields) != len(COLUMNS):
            bad.append(RowError(number, None, "bad_columns"))
            continue
        rows.append((number, dict(zip(header, fields, strict=True))))
    return rows, bad


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


async def _store(
    db: Database,
    checked: list[tuple[int, PaymentRow]],
    result: ImportResult,
    source: str,
    actor: str,
    details: Mapping[str, Any],
) -> None:
    """Look the rows up and insert the new ones, all in one transaction."""
    async with db.session() as session:
        if db.dialect == "sqlite":
            # Take the write lock first: an import at the same moment waits, then sees these.
            await session.execute(sa.text("UPDATE payments SET id = id WHERE 1 = 0"))
        accounts: dict[str, int] = {}
        for chunk in _chunks([row.account_no for _, row in checked]):
            query = sa.select(ACCOUNTS.c.account_no, ACCOUNTS.c.id).where(
                ACCOUNTS.c.account_no.in_(chunk)
            )
            accounts.update({no: id_ for no, id_ in await session.execute(query)})
        on_file: dict[str, tuple[int, date, Any]] = {}
        for chunk in _chunks([row.reference for _, row in checked]):
            query = sa.select(
                PAYMENTS.c.reference, PAYMENTS.c.account_id, PAYMENTS.c.paid_on, PAYMENTS.c.amount
            ).where(PAYMENTS.c.reference.in_(chunk))
            on_file.update(
                {ref: (acc, day, amount) for ref, acc, day, amount in await session.execute(query)}
            )
        new: dict[str, tuple[int, date, Any]] = {}
        for position, row in checked:
            account_id = accounts.get(row.account_no)
            if account_id is None:
                result.errors.append(RowError(position, row.reference, "unknown_account"))
                continue
            payment = (account_id, row.paid_on, row.amount)
            earlier = on_file.get(row.reference) or new.get(row.reference)
            if earlier is not None:
                if earlier == payment:
                    result.already_imported += 1
                else:
                    result.errors.append(RowError(position, row.reference, "duplicate_reference"))
                continue
            new[row.reference] = payment
            session.add(
                Payment(
                    reference=row.reference,
                    account_id=account_id,
                    paid_on=row.paid_on,
                    amount=row.amount,
                    source=source,
                )
            )
        result.imported = len(new)
        if new:
            await audit.record(
                session,
                actor,
                "payments_imported",
                details={
                    **details,
                    "source": source,
                    "imported": len(new),
                    "already_imported": result.already_imported,
                    "rejected": len(result.errors),
                    "total": sum((amount for _, _, amount in new.values()), start=0),
                },
            )
        await session.commit()


async def import_payments(
    db: Database,
    rows: Sequence[tuple[int, Mapping[str, object]]],
    *,
    source: str,
    today: date,
    bad: Sequence[RowError] = (),
    actor: str = "system",
    details: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Check `rows` ((position, fields)) and store the good ones; the result lists the bad."""
    if len(rows) + len(bad) > MAX_ROWS:
        raise ValueError(f"at most {MAX_ROWS} rows at once")
    checked: list[tuple[int, PaymentRow]] = []
    invalid: list[RowError] = list(bad)
    for position, fields in rows:
        outcome = validate_row(position, fields, today)
        if isinstance(outcome, RowError):
            invalid.append(outcome)
        else:
            checked.append((position, outcome))
    for attempt in range(IMPORT_ATTEMPTS):
        result = ImportResult(rows=len(rows) + len(bad), errors=list(invalid))
        try:
            await _store(db, checked, result, source, actor, details or {})
            break
        except IntegrityError:
            # Another import stored one of these references a moment ago: look again.
            if attempt == IMPORT_ATTEMPTS - 1:
                raise
    result.errors.sort(key=lambda error: error.position)
    return result


async def import_file(db: Database, path: Path, today: date) -> ImportResult:
    """Import the payments file at `path`; `PaymentFileError` if it cannot be read as one."""
    try:
        with path.open("rb") as stream:
            rows, bad = read_payments_file(stream)
    except OSError as error:
        raise PaymentFileError(f"cannot read {path}: {error.strerror}") from None
    return await import_payments(
        db, rows, source="file", today=today, bad=bad, details={"file": path.name[:200]}
    )
