"""What a complaint is about (`bot.domain.complaints`), by the bundled policy's words."""

from __future__ import annotations

import pytest

from bot.domain.complaints import complaint_category
from bot.domain.policy import DEFAULT_POLICY_PATH, load_policy

ESCALATION = load_policy(DEFAULT_POLICY_PATH).escalation


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("催收员天天打电话骚扰我家人，我要投诉", "collection_conduct"),
        ("你们爆通讯录", "collection_conduct"),
        ("乱收费，罚息太高了", "fees"),
        ("手续费不合理", "fees"),
        ("我的个人资料被泄露了", "privacy"),
        ("客服态度太差", "service"),
        ("我要投诉", "other"),
        ("", "other"),
    ],
)
def test_complaint_category(text: str, category: str) -> None:
    assert complaint_category(text, ESCALATION) == category


def test_every_policy_word_maps_to_its_category() -> None:
    categories = ESCALATION.complaint_categories
    for category, words in categories.items():
        for word in words:
            # The first category with a word in the text wins.
            first = next(c for c, ws in categories.items() if any(w in word for w in ws))
            assert complaint_category(f"我要投诉：{word}", ESCALATION) == first, word
            assert first == category or list(categories).index(first) < list(categories).index(
                category
            )
