"""What the staff's two work lists share: handoff cases and collections referrals.

Both are rows the assistant queues and staff move on: the same refusal
(`CaseError`, carrying a code, never a sentence: the console words it), the same
retry when two processes insert at once, the same one-shot state change, and the
same way of turning a row into a frozen view.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.store import audit
from bot.store.engine import Database
from bot.store.models import CollectionsReferral, HandoffCase, StaffMember

T = TypeVar("T")

#: Why a case or a referral could not be changed:
#: `claim_lost`: the case is not waiting (someone claimed it first, or it is closed or absent);
#: `closed_or_absent`: the case to close does not exist or is closed already;
#: `not_holder`: a negotiator closes only a case they hold;
#: `unknown_outcome`: the outcome is none of `HANDOFF_OUTCOMES`;
#: `referral_handled`: the referral does not exist or was acknowledged already;
#: `conflict`: another process kept inserting the same row at the same moment.
CaseErrorCode = Literal[
    "claim_lost",
    "closed_or_absent",
    "not_holder",
    "unknown_outcome",
    "referral_handled",
    "conflict",
]
CASE_ERROR_CODES: tuple[CaseErrorCode, ...] = get_args(CaseErrorCode)


class CaseError(Exception):
    """A case or referral cannot be changed that way; `code` says why (`CASE_ERROR_CODES`).

    `detail` is for the log, in English; what staff read is the console's.
    """

    def __init__(self, code: CaseErrorCode, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code: CaseErrorCode = code
        self.detail = detail


def view_values(row: HandoffCase | CollectionsReferral, view: type[Any]) -> dict[str, Any]:
    """The row's values for the view's fields that are columns; the summary parsed."""
    values = {
        name: getattr(row, name) for name in view.__dataclass_fields__ if name in row.__table__.c
    }
    values["summary"] = json.loads(row.summary)
    return values


def json_ready(view: Any) -> dict[str, Any]:
    """A view dataclass as JSON-ready data: times as ISO 8601, the summary a plain dict."""
    data: dict[str, Any] = {}
    for name in view.__dataclass_fields__:
        value = getattr(view, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif name == "summary":
            value = dict(value)
        data[name] = value
    return data


def staff_actor(staff: StaffMember) -> str:
    """How the audit log names a staff member."""
    return f"staff:{staff.username}"


async def second_try_on_conflict(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `attempt`; if a unique index refused it, once more.

    Opening a case or a referral reads first and inserts if nothing is there;
    when another process inserted in between, the index refuses the second row
    and the second pass finds the first one. `what` goes into the error's detail.
    """
    for _ in range(2):
        try:
            return await attempt()
        except IntegrityError:
            continue
    raise CaseError("conflict", what)


async def change_once(
    db: Database,
    model: type[HandoffCase] | type[CollectionsReferral],
    row_id: int,
    state: tuple[str, str],
    values: dict[str, Any],
    staff: StaffMember,
    action: str,
    refusal: CaseErrorCode,
) -> None:
    """Move one row from `state[0]` to `state[1]` with `values`, and audit it.

    The state check and the change are one conditional UPDATE, so of two staff
    members doing it at once exactly one succeeds; the other gets
    `CaseError(refusal)`.
    """
    async with db.session() as session:
        result = await session.execute(
            sa.update(model)
            .where(model.id == row_id, model.status == state[0])
            .values(status=state[1], staff_id=staff.id, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            raise CaseError(refusal)
        row = await session.get(model, row_id)
        assert row is not None
        await audit.record(
            session,
            staff_actor(staff),
            action,
            row.conversation_id,
            row.debtor_id,
            {"reference": row.reference},
        )
        await session.commit()
