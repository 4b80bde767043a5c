"""Before verification no reply reveals any figure of any account, or that one exists."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.store.seed import DEMO_DEBTORS
from tests.support.conversations import reply_text

pytestmark = pytest.mark.e2e


def _figures(amount: Decimal) -> list[str]:
    return [f"{amount:,.2f}", f"{amount:.2f}", f"{amount:,.0f}"]


def secrets_of_every_account() -> list[str]:
    """Every figure and field of every demo account, in the forms a reply could use."""
    found: set[str] = set()
    for debtor in DEMO_DEBTORS:
        for account in debtor.accounts:
            total = account.overdue_principal + account.interest + account.penalty_fees
            for amount in (account.overdue_principal, account.interest, total):
                if amount:
                    found.update(_figures(amount))
            if account.penalty_fees:
                found.update(_figures(account.penalty_fees)[:1])
            found.add(f"逾期 {account.days_past_due} 天")
        found.add(debtor.mobile)
        found.add(f"{debtor.mobile[:3]}****{debtor.mobile[-4:]}")
    return sorted(found)


WRONG_DETAILS = [
    ("{name}", "身份证后四位0000，手机{mobile}"),
    ("{name}", "身份证后四位{last4}，手机13012345678"),
]


@pytest.mark.parametrize(
    "debtor",
    [*DEMO_DEBTORS, None],
    ids=[d.full_name for d in DEMO_DEBTORS] + ["non-customer"],
)
async def test_nothing_is_disclosed_before_verification(client, debtor) -> None:
    if debtor is None:
        name, last4, mobile = "赵敏", "5555", "13312345678"
    else:
        name, last4, mobile = debtor.full_name, debtor.national_id[-4:], debtor.mobile
    messages = [
        "我欠了多少钱",
        f"我叫{name}，身份证后四位0000，手机{mobile}",
        f"我叫{name}，身份证后四位{last4}，手机13012345678",
        "我想申请个性化分期",
        "我逾期几天了",
    ]
    replies = []
    for message in messages:
        replies.append(reply_text(await client.say(message)))
    transcript = "\n".join(replies)
    leaked = [secret for secret in secrets_of_every_account() if secret in transcript]
    assert leaked == [], transcript
    assert "核实成功" not in transcript
    assert "没有逾期账户" not in transcript
