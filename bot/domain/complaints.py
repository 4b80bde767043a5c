"""What a debtor's complaint is about, by the words the policy lists per category."""

from __future__ import annotations

from bot.domain.policy import Escalation

#: The category of a complaint none of the policy's words match.
OTHER = "other"


def complaint_category(text: str, escalation: Escalation) -> str:
    """What a complaint is about, by the policy's words; `other` if none match.

    The categories are tried in the policy's order: the first with a word in
    `text` wins.
    """
    for category, words in escalation.complaint_categories.items():
        if any(word in text for word in words):
            return category
    return OTHER
