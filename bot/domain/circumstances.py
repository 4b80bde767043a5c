"""Reading a debtor's financial circumstances from what they write.

Debtors give several figures in one message and in any order: "我失业三个月了，
现在打零工一个月四千左右，房租加吃饭要两千五". The NLU pipeline finds the amounts
and durations (`amount`, `months`) and the hardship (`hardship_reason`); this
module decides which figure is which, from the words in the same clause:
"打零工 … 四千" is income, "房租加吃饭 … 两千五" essential expenses. A figure with
no such words answers the question the assistant just asked. Later figures win,
so "说错了，收入是五千" corrects the income.

Values are strings (`Decimal` text for money, an int for months, `unknown` when
the debtor cannot say), ready to be kept in Rasa slots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain.horizons import RECOVERY, months_until
from bot.domain.negotiation import Circumstances
from bot.domain.policy import Policy

INCOME = "monthly_income"
EXPENSES = "monthly_expenses"
OTHER_REPAYMENTS = "other_repayments"
HARDSHIP_REASON = "hardship_reason"
HARDSHIP_MONTHS = "hardship_months"
PROPOSED_MONTHLY = "proposed_monthly"
AVAILABLE_FUNDS = "available_funds"
HARDSHIP_DETAIL = "hardship_detail"
#: The form's questions, in the order they are asked.
FIELDS = (
    INCOME,
    EXPENSES,
    OTHER_REPAYMENTS,
    HARDSHIP_REASON,
    HARDSHIP_MONTHS,
    PROPOSED_MONTHLY,
    AVAILABLE_FUNDS,
)
MONEY_FIELDS = (INCOME, EXPENSES, OTHER_REPAYMENTS, PROPOSED_MONTHLY, AVAILABLE_FUNDS)
#: Stored for optional questions the debtor skipped or cannot answer.
UNKNOWN = "unknown"
HARDSHIP_REASONS = (
    "unemployment",
    "income_drop",
    "illness",
    "family_emergency",
    "business_failure",
    "other",
)
MAX_DETAIL_CHARS = 300
#: Larger figures are not amounts anyone owes or earns; they are ignored.
MAX_AMOUNT = Decimal("1e15")

#: Words that say what an amount in the same clause is, checked in this order.
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        AVAILABLE_FUNDS,
        re.compile(r"凑|借到|借我|借给我|一次性|一次拿|存款|积蓄|存了|手头有|手上有|拿得出|筹"),
    ),
    (
        OTHER_REPAYMENTS,
        re.compile(
            r"花呗|借呗|白条|网贷|别的贷|其他贷|其它贷|别的债|其他债|其它债|别的欠|其他欠|"
            r"别的卡|其他卡|其它卡|别家|别的银行|其他银行|还别的|还其他|车贷|房贷|月供"
        ),
    ),
    (
        PROPOSED_MONTHLY,
        re.compile(
            r"只能还|能还|最多还|还得起|还得上|可以还|还多少|还个|先还|每个月还|每月还|月还|行不行|可以吗|行吗"
        ),
    ),
    (
        EXPENSES,
        re.compile(
            r"房租|租金|吃饭|生活费|开销|开支|支出|花销|花费|花掉|要花|得花|水电|伙食|家用|学费|"
            r"医药费|药费|看病|养孩子|养家|日常"
        ),
    ),
    (
        INCOME,
        re.compile(
            r"收入|工资|薪水|月薪|薪资|到手|挣|赚|零工|进账|底薪|提成|退休金|养老金|低保|补贴|营业额|"
            r"打工|上班|兼职|干活"
        ),
    ),
)
#: Spaces too: voice input and fast typing separate clauses with them ("四千 房租两千五").
_CLAUSE_BREAK = re.compile(r"[，,。．.；;！!？?\n、]|\s+|但是|不过|然后|另外")
_NO_INCOME = re.compile(
    r"(没有|没|无|零)(任何)?(固定)?(收入|工资|进账)|一分钱(收入)?都没|收入(是|为)?(0|零|没有)"
)
_NO_OTHER_DEBTS = re.compile(
    r"(没有|没|无)(别的|其他|其它)?(的)?(贷款|欠款|债|网贷|月供|要还的)"
    r"|(别的|其他|其它)(的)?(贷款|欠款|债|网贷|月供)(也|都)?(没有|没|无)"
)
_NEGATIVE = re.compile(
    r"^(没有|没|无|不知道|不清楚|不确定|说不准|说不好|不好说|不一定|跳过|不用|算了|没了|都没有|暂时没有|一分都没有)"
)
_NONE = re.compile(r"^(没有|没了|没|无|都没有|暂时没有|一分都没有|一笔都没有|不欠|零)")
_UNKNOWN_DURATION = re.compile(r"不知道|不清楚|不确定|说不准|说不好|不好说|不一定|看情况|没准")
_LONG_TERM = re.compile(r"长期|一直|很久|好几年|一辈子|永久")
_FUTURE = re.compile(
    r"还要|还得|预计|估计|大概|可能|恢复|好转|找到|之后|以后|持续|以内|之内|左右|差不多"
)
_CORRECTION = re.compile(r"说错|不对|不是|改成|改为|更正|纠正|应该是|其实是")
_CANNOT_SAY = re.compile(
    r"不知道|不清楚|不确定|没算过|没算|说不准|说不好|不好说|算不清|记不清|没数"
)
_ALREADY_SAID = re.compile(
    r"(说|讲|告诉|问|回答)过|刚才(说|讲|告诉|问|回答)|不是(说|讲|告诉)(过|了)|已经(说|讲|告诉|回答)"
)
_TRAILING_BREAKS = re.compile(rf"(?:{_CLAUSE_BREAK.pattern})+$")
#: Characters that say something beyond an amount's own unit ("左右", "块", "元" do not).
_WORDS = re.compile(r"[^\s\d.,，。左右块元钱多来个的吧啊呢]")
_RESUME = re.compile(r"继续|接着|说到哪|到哪了|刚才问|往下|下一个|下一步")
#: The figures an offer cannot be computed without; the other questions may stay open.
NEEDED_FOR_OFFERS = (INCOME, EXPENSES, OTHER_REPAYMENTS)
#: What an optional question is taken as when the debtor leaves it open.
LEFT_OPEN = {
    HARDSHIP_REASON: "other",
    HARDSHIP_MONTHS: UNKNOWN,
    PROPOSED_MONTHLY: UNKNOWN,
    AVAILABLE_FUNDS: UNKNOWN,
}
#: Fields whose amounts in separate clauses of one message are items of one total.
SUMMED_FIELDS = (EXPENSES, OTHER_REPAYMENTS)
_PER_MONTH_BEFORE = re.compile(r"(每|一)个?月$")


@dataclass(frozen=True)
class Mention:
    """A quantity the NLU found: `amount` (yuan) or `months`, with its character span."""

    entity: str
    value: Any
    start: int
    end: int
    #: The high end of a range ("四五千", "一两年"); `value` is then its low end.
    high: Any = None

    def for_field(self, field: str) -> Any:
        """The end of a range that counts for `field` (`RANGE_END`), or the value."""
        if self.high is not None and RANGE_END.get(field) == "high":
            return self.high
        return self.value


#: Which end of a range counts: for income and what can be paid, the end the debtor
#: can count on (the low one); for costs and the hardship's length, the worst case.
RANGE_END = {
    INCOME: "low",
    EXPENSES: "high",
    OTHER_REPAYMENTS: "high",
    HARDSHIP_MONTHS: "high",
    PROPOSED_MONTHLY: "low",
    AVAILABLE_FUNDS: "low",
}


def mentions(entities: Iterable[Mapping[str, Any]]) -> list[Mention]:
    """The amounts and durations among Rasa's extracted entities, in text order."""
    found = []
    for entity in entities:
        name = entity.get("entity")
        if name not in ("amount", "months"):
            continue
        try:
            found.append(
                Mention(
                    name,
                    entity.get("value"),
                    int(entity["start"]),
                    int(entity["end"]),
                    entity.get("high"),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(found, key=lambda m: m.start)


def as_money(value: Any) -> Decimal | None:
    """An entity's amount as exact money, or None (floats, junk, absurd sizes)."""
    if isinstance(value, (bool, float)):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        return None
    return amount.quantize(Decimal("0.01"))


def _clause(text: str, start: int, end: int) -> tuple[str, str]:
    """The part of the clause around a span before it, and after it."""
    breaks = [m for m in _CLAUSE_BREAK.finditer(text)]
    left = max((m.end() for m in breaks if m.end() <= start), default=0)
    right = min((m.start() for m in breaks if m.start() >= end), default=len(text))
    return text[left:start], text[end:right]


def _field_of_amount(text: str, mention: Mention) -> str | None:
    """The field named by words in the amount's clause, else by the nearest words before it."""
    before, after = _clause(text, mention.start, mention.end)
    parts = [before, after]
    if not _WORDS.search(before + after):
        # A bare amount after a space ("花呗每月还 八百") belongs to the clause before it.
        head = _TRAILING_BREAKS.sub("", text[: mention.start - len(before)])
        if head:
            parts.append(_clause(head, len(head), len(head))[0])
    for part in parts:
        for field, cue in _CUES:
            if cue.search(part):
                return field
    nearest: tuple[int, str] | None = None
    for field, cue in _CUES:
        for match in cue.finditer(text[: mention.start]):
            if nearest is None or match.end() > nearest[0]:
                nearest = (match.end(), field)
    return nearest[1] if nearest else None


def _clause_index(text: str, position: int) -> int:
    return len([m for m in _CLAUSE_BREAK.finditer(text) if m.end() <= position])


def _is_expected_duration(text: str, mention: Mention, asked: str | None) -> bool:
    before, after = _clause(text, mention.start, mention.end)
    if _PER_MONTH_BEFORE.search(text[: mention.end]) and mention.value == 1:
        return False  # "一个月四千": per month, not a duration
    if re.match(r"\s*(的)?(工资|收入|房租|生活费)", after):
        return False
    if _FUTURE.search(before) or _FUTURE.search(after):
        return True
    if after.startswith("了") or re.search(r"已经|都", before):
        return False  # "失业三个月了": how long it has lasted so far
    return asked == HARDSHIP_MONTHS


def extract(
    text: str,
    entities: Iterable[Mapping[str, Any]],
    asked: str | None = None,
    today: date | None = None,
) -> dict[str, str]:
    """The circumstances stated in one message; `asked` is the question it answers.

    Given `today`, a hardship said to end at a time ("过完年", "下个月就好了")
    counts as the months until then (`hardship_horizon`).
    """
    return extract_with_ranges(text, entities, asked, today)[0]


def hardship_horizon(
    text: str,
    entities: Iterable[Mapping[str, Any]],
    asked: str | None,
    today: date,
) -> int | None:
    """The hardship's length in months when the message names when it ends, not how long.

    Read at the duration question, or anywhere the message says the hardship is
    over then ("过完年应该能找到工作"); a duration in months always wins.
    """
    text = text or ""
    if any(m.entity == "months" for m in mentions(entities)):
        return None
    if asked != HARDSHIP_MONTHS and not RECOVERY.search(text):
        return None
    return months_until(text, today)


def extract_with_ranges(
    text: str,
    entities: Iterable[Mapping[str, Any]],
    asked: str | None = None,
    today: date | None = None,
) -> tuple[dict[str, str], set[str]]:
    """`extract`, and the fields whose figure came from a range (the reply says which end)."""
    found: dict[str, str] = {}
    ranged: set[str] = set()
    text = text or ""
    unassigned: list[Mention] = []
    #: field -> clause -> amount: the last amount of a clause counts.
    by_clause: dict[str, dict[int, Decimal]] = {}
    for mention in mentions(entities):
        if mention.entity == "months":
            months = mention.for_field(HARDSHIP_MONTHS)
            if not isinstance(months, int) or isinstance(months, bool):
                continue
            if _is_expected_duration(text, mention, asked):
                found[HARDSHIP_MONTHS] = str(months)
                if mention.high is not None:
                    ranged.add(HARDSHIP_MONTHS)
            continue
        if as_money(mention.value) is None:
            continue
        field = _field_of_amount(text, mention)
        if field is None:
            unassigned.append(mention)
            continue
        amount = as_money(mention.for_field(field))
        if amount is None:
            continue
        by_clause.setdefault(field, {})[_clause_index(text, mention.start)] = amount
        if mention.high is not None:
            ranged.add(field)
    correcting = bool(_CORRECTION.search(text))
    for field, amounts in by_clause.items():
        if field in SUMMED_FIELDS and not correcting:
            # "房租一千五，吃饭一千": separate items add up.
            found[field] = str(sum(amounts.values(), Decimal("0.00")))
        else:
            found[field] = str(amounts[max(amounts)])
    if _NO_INCOME.search(text):
        found.setdefault(INCOME, "0.00")
    if _NO_OTHER_DEBTS.search(text):
        found.setdefault(OTHER_REPAYMENTS, "0.00")
    if unassigned and asked in MONEY_FIELDS and asked not in found:
        found[asked] = str(as_money(unassigned[-1].for_field(asked)))
        if unassigned[-1].high is not None:
            ranged.add(asked)
    stripped = text.strip()
    if today is not None and HARDSHIP_MONTHS not in found:
        horizon = hardship_horizon(text, entities, asked, today)
        if horizon is not None:
            found[HARDSHIP_MONTHS] = str(horizon)
    if asked == HARDSHIP_MONTHS and HARDSHIP_MONTHS not in found:
        if _LONG_TERM.search(stripped):
            found[HARDSHIP_MONTHS] = UNKNOWN
        elif _UNKNOWN_DURATION.search(stripped):
            found[HARDSHIP_MONTHS] = UNKNOWN
    if asked == OTHER_REPAYMENTS and asked not in found and _NONE.match(stripped):
        found[asked] = "0.00"  # only a real "no": "不清楚" is asked again
    if asked == AVAILABLE_FUNDS and asked not in found and _NEGATIVE.match(stripped):
        found[asked] = "0.00"
    if asked == PROPOSED_MONTHLY and asked not in found and _NEGATIVE.match(stripped):
        found[asked] = UNKNOWN
    if (
        asked == INCOME
        and asked not in found
        and re.fullmatch(r"(没有|没|无|0|零)[。！!]*", stripped)
    ):
        found[asked] = "0.00"
    return found, ranged


def hardship_from(
    entities: Iterable[Mapping[str, Any]], text: str, asked: str | None
) -> tuple[str, str] | None:
    """The hardship reason and its detail (the debtor's own words), if the message gives one."""
    detail = (text or "").strip()[:MAX_DETAIL_CHARS]
    for entity in entities:
        if entity.get("entity") == HARDSHIP_REASON and entity.get("value") in HARDSHIP_REASONS:
            return str(entity["value"]), detail
    if asked == HARDSHIP_REASON and len(detail) >= 2 and not _NEGATIVE.match(detail):
        return "other", detail
    return None


def implausible(field: str, value: str, known: Mapping[str, Any], policy: Policy) -> str | None:
    """Why a value cannot be right (`negative`, `income_too_large`, …), or None."""
    if value == UNKNOWN:
        return None
    if field == HARDSHIP_MONTHS:
        months = int(value)
        if months < 0:
            return "negative"
        return "months_too_long" if months > policy.plausibility.max_hardship_months else None
    if field not in MONEY_FIELDS:
        return None
    amount = Decimal(value)
    if amount < 0:
        return "negative"
    if field == INCOME and amount > policy.plausibility.max_monthly_income:
        return "income_too_large"
    income = known.get(INCOME)
    if field == EXPENSES and income not in (None, UNKNOWN):
        limit = Decimal(str(income)) * policy.plausibility.max_expenses_to_income
        if Decimal(str(income)) > 0 and amount > limit:
            return "expenses_too_large"
    if field in (EXPENSES, OTHER_REPAYMENTS, PROPOSED_MONTHLY, AVAILABLE_FUNDS):
        if amount > policy.plausibility.max_monthly_income * 100:
            return "amount_too_large"
    return None


def cannot_say(text: str) -> bool:
    """The debtor does not know the figure asked for ("不知道 没算过")."""
    return bool(_CANNOT_SAY.search(text or ""))


def already_said(text: str) -> bool:
    """The debtor says they were asked this before ("我刚才说过了")."""
    return bool(_ALREADY_SAID.search(text or ""))


def resumes(text: str) -> bool:
    """The debtor asks to go on where the questions stopped ("继续", "刚才说到哪了")."""
    return bool(_RESUME.search(text or ""))


def still_needed(known: Mapping[str, Any]) -> list[str]:
    """The figures still missing before any offer can be computed, in the form's order."""
    return [name for name in NEEDED_FOR_OFFERS if known.get(name) in (None, "")]


def left_open(known: Mapping[str, Any]) -> dict[str, str]:
    """Values for the optional questions not yet answered, to compute offers now."""
    return {name: value for name, value in LEFT_OPEN.items() if known.get(name) in (None, "")}


def circumstances(slots: Mapping[str, Any]) -> Circumstances | None:
    """The engine's view of the form's slots; None while a required figure is missing."""
    try:
        income = Decimal(str(slots[INCOME]))
        expenses = Decimal(str(slots[EXPENSES]))
        other = Decimal(str(slots[OTHER_REPAYMENTS]))
    except (KeyError, InvalidOperation, ValueError):
        return None
    months = slots.get(HARDSHIP_MONTHS)
    proposed = slots.get(PROPOSED_MONTHLY)
    funds = slots.get(AVAILABLE_FUNDS)
    reason = slots.get(HARDSHIP_REASON)
    return Circumstances(
        monthly_income=income,
        monthly_expenses=expenses,
        other_repayments=other,
        hardship_reason=reason if reason in HARDSHIP_REASONS else "other",
        hardship_months=None if months in (None, UNKNOWN) else int(months),
        proposed_monthly=None if proposed in (None, UNKNOWN) else Decimal(str(proposed)),
        available_funds=Decimal("0.00") if funds in (None, UNKNOWN) else Decimal(str(funds)),
    )
