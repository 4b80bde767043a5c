"""What the pages and the JSON API do alike with cases and referrals.

Who may see a case, how a case reads with its Chinese labels, and the staff's
actions with every check they need: each raises `Problem` with the status and
the message staff see, which a page shows in place and the API returns.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.console import labels
from bot.console.handling import Problem, is_supervisor
from bot.console.rasa_api import RasaError
from bot.console.state import Console
from bot.console.texts import CASE_ERRORS
from bot.domain.vocabulary import HANDOFF_OUTCOMES
from bot.store import transcript as transcripts
from bot.store.cases import (
    CaseView,
    claim_case,
    close_case,
    get_case,
    queue,
    record_staff_reply,
)
from bot.store.engine import Database
from bot.store.models import StaffMember, utcnow
from bot.store.referrals import ReferralView, acknowledge_referral
from bot.store.worklist import CaseError

logger = logging.getLogger(__name__)

MAX_REPLY_CHARACTERS = 2000
MAX_NOTE_CHARACTERS = 2000
#: Closed cases listed on the supervisors' page, newest first.
CLOSED_LIST_LIMIT = 200


def may_read(member: StaffMember, case: CaseView) -> bool:
    """Supervisors see every case; a negotiator the waiting ones and those they hold."""
    if is_supervisor(member):
        return True
    return case.status == "waiting" or (case.status == "claimed" and case.staff_id == member.id)


def case_data(case: CaseView, member: StaffMember) -> dict[str, Any]:
    """A case as the API and the templates show it: its fields plus Chinese labels."""
    data = case.to_dict()
    waited = (utcnow() - case.created_at).total_seconds()
    data.update(
        reason_label=labels.label(labels.REASONS, case.reason),
        category_label=labels.optional_label(labels.COMPLAINT_CATEGORIES, case.category),
        status_label=labels.label(labels.STATUSES, case.status),
        outcome_label=labels.optional_label(labels.OUTCOMES, case.outcome),
        channel_label=labels.label(labels.CHANNELS, case.channel),
        waited_seconds=int(waited),
        waited=labels.duration(waited),
        created_label=labels.beijing_time(case.created_at),
        claimed_label=labels.beijing_time(case.claimed_at),
        closed_label=labels.beijing_time(case.closed_at),
        mine=case.staff_id == member.id,
    )
    return data


def referral_data(referral: ReferralView) -> dict[str, Any]:
    """A referral with Chinese labels."""
    data = referral.to_dict()
    data.update(
        reason_label=labels.label(labels.REFERRAL_REASONS, referral.reason),
        status_label=labels.label(labels.REFERRAL_STATUSES, referral.status),
        created_label=labels.beijing_time(referral.created_at),
        acknowledged_label=labels.beijing_time(referral.acknowledged_at),
    )
    return data


def _transcript_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "buttons": [],
            **event,
            "from_label": labels.SPEAKERS.get(event["from"], event["from"]),
            "at_label": labels.beijing_time(event["at"]),
        }
        for event in events
    ]


def reading_note(events: list[dict[str, Any]]) -> str | None:
    """What the reply box says of the debtor's script, if they read Traditional.

    The script is the one the latest bot message was sent in
    (`bot.rasa_ext.reply_script`); staff replies are converted to it on the way.
    """
    for event in reversed(events):
        if event.get("script"):
            return labels.READING_SCRIPTS.get(str(event["script"]))
    return None


async def transcript(case: CaseView, after: int = 0) -> list[dict[str, Any]]:
    """The case's conversation after event `after`, labelled; 503 if unreadable."""
    try:
        events = await transcripts.transcript(case.conversation_id, after_id=after)
    except transcripts.TranscriptUnavailable as error:
        logger.warning("transcript of %s unavailable: %s", case.reference, error)
        raise Problem(503, "对话记录暂时无法读取") from error
    return _transcript_items(events)


async def readable_case(db: Database, member: StaffMember, case_id: int) -> CaseView:
    """The case, if `member` may see it; else 404, as if it did not exist."""
    case = await get_case(db, case_id)
    if case is None or not may_read(member, case):
        raise Problem(404, "案件不存在")
    return case


async def open_queue(db: Database, member: StaffMember) -> list[CaseView]:
    """The open cases `member` may see, most urgent first."""
    return [case for case in await queue(db) if may_read(member, case)]


async def closed_cases(db: Database) -> list[CaseView]:
    """The latest closed cases, newest first."""
    closed = await queue(db, statuses=("closed",))
    closed.sort(key=lambda case: (case.closed_at or case.created_at, case.id), reverse=True)
    return closed[:CLOSED_LIST_LIMIT]


async def claim(db: Database, member: StaffMember, case_id: int) -> CaseView:
    """Give the case to `member` (again, if they hold it); 409 if someone else was faster."""
    case = await get_case(db, case_id)
    if case is None or (case.status == "closed" and not is_supervisor(member)):
        raise Problem(404, "案件不存在")
    if case.status == "claimed" and case.staff_id == member.id:
        return case
    if case.status == "closed":
        raise Problem(409, "该案件已结束")
    try:
        return await claim_case(db, case_id, member)
    except CaseError as error:
        raise Problem(409, CASE_ERRORS[error.code]) from error


async def reply(console: Console, member: StaffMember, case_id: int, text: object) -> CaseView:
    """Send `text` to the debtor of a case `member` holds, and audit it."""
    case = await readable_case(console.db, member, case_id)
    if case.status == "waiting":
        raise Problem(409, "请先认领该案件，再回复")
    if case.status != "claimed" or case.staff_id != member.id:
        raise Problem(403, "只有认领该案件的同事可以回复")
    if not isinstance(text, str):
        raise Problem(400, "回复内容须为文字")
    text = text.strip()
    if not text:
        raise Problem(400, "回复内容不能为空")
    if len(text) > MAX_REPLY_CHARACTERS:
        raise Problem(400, f"回复内容不能超过 {MAX_REPLY_CHARACTERS} 个字")
    try:
        await console.rasa.send_staff_message(
            case.conversation_id, text, member.display_name, case.reference
        )
    except RasaError as error:
        logger.warning("reply to %s not delivered: %s", case.reference, error)
        raise Problem(502, "消息未送达，请重试") from error
    await record_staff_reply(console.db, case, member, text)
    return case


async def close(
    console: Console, member: StaffMember, case_id: int, outcome: object, note: object
) -> tuple[CaseView, bool]:
    """Close the case with `outcome` and `note`; also whether the assistant was resumed."""
    case = await readable_case(console.db, member, case_id)
    if not isinstance(outcome, str) or outcome not in HANDOFF_OUTCOMES:
        raise Problem(400, "请选择有效的结案结果")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise Problem(400, "备注须为文字")
    note = note.strip()
    if len(note) > MAX_NOTE_CHARACTERS:
        raise Problem(400, f"备注不能超过 {MAX_NOTE_CHARACTERS} 个字")
    if case.status == "closed":
        raise Problem(409, "该案件已结束")
    if not is_supervisor(member) and case.status != "claimed":
        raise Problem(409, "请先认领该案件，再结案")
    try:
        closed = await close_case(console.db, case.id, member, outcome, note)
    except CaseError as error:
        raise Problem(409, CASE_ERRORS[error.code]) from error
    return closed, await console.resume(closed)


async def acknowledge(db: Database, supervisor: StaffMember, referral_id: int) -> None:
    """The collections department took the referral over; 409 if handled already."""
    try:
        await acknowledge_referral(db, referral_id, supervisor)
    except CaseError as error:
        raise Problem(409, CASE_ERRORS[error.code]) from error
