"""Critical messages caught by word and pattern lists, not by the classifier alone.

A debtor in danger, a complaint about collectors, a dispute, a request for a
person, "I cannot pay" and an explicit "I will not pay" must never be missed
because a statistical model was unsure. The lists live in the policy file
(`critical_messages:`), are compiled and validated when the policy loads, and
are applied to every message after the classifier: by the NLU pipeline
(`bot.rasa_ext.nlu.components.CriticalMessageGuard`) and by the actions that
must tell imminent danger from other distress.

Patterns are regular expressions matched against the normalised message
(Simplified Chinese, half-width, lower case), so one list serves Traditional
input too. A rule matches when one of its `match` patterns is found and none
of its `unless` patterns is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.domain.normalize import normalize_text

DISTRESS = "express_distress"
COMPLAINT = "complain"
DISPUTE = "dispute_debt"
HUMAN = "request_human"
HARDSHIP = "state_hardship"
REFUSAL = "refuse_payment"

#: The rules in the order they are tried, each with the intent it stands for.
#: `unable_to_pay` stands for `state_hardship`: "还不上" is never a refusal.
RULE_INTENTS: dict[str, str] = {
    "imminent_danger": DISTRESS,
    "express_distress": DISTRESS,
    "complain": COMPLAINT,
    "dispute_debt": DISPUTE,
    "request_human": HUMAN,
    "unable_to_pay": HARDSHIP,
    "refuse_payment": REFUSAL,
}
#: Critical intents, most urgent first: a rule never overrides a more urgent prediction
#: (so an explicit "will not pay" never replaces a hardship the classifier saw).
URGENCY = (DISTRESS, COMPLAINT, DISPUTE, HUMAN, HARDSHIP, REFUSAL)
#: Predictions that "I cannot pay" replaces. An FAQ such as "还不上了怎么办" keeps
#: its answer, and inside the circumstances form an answer keeps its intent.
INABILITY_REPLACES = frozenset({REFUSAL, "nlu_fallback", "out_of_scope", "greet", "thank"})
#: ... and these too when the message asks nothing: "查出来是癌症 这卡是真的没法还了"
#: and "我现在没有还款能力" state a hardship; "还不上了怎么办" asks a question the FAQ
#: answers. An answer inside the form (`inform`) keeps its intent.
FAQ = "faq"
INABILITY_REPLACES_UNLESS_ASKED = frozenset(
    {FAQ, "ask_account_status", "ask_repayment_plan", "affirm", "deny", "goodbye", "bot_challenge"}
)
ASKS = re.compile(
    r"[?？吗嘛呢]|怎么|怎样|如何|什么|为何|为啥|多少|几个|几年|几天|哪里|哪些|哪个|"
    r"能不能|可不可以|可以不|会不会|是不是|有没有|要不要|行不行|算不算|后果|影响|咋办|咋整"
)


def compile_patterns(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """Compile `patterns`; `ValueError` naming the first one that is not a valid regex."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise ValueError(
                f"pattern {pattern!r} is not a valid regular expression: {error}"
            ) from None
    return tuple(compiled)


@dataclass(frozen=True)
class Rule:
    """One critical message class: found by `match`, except where `unless` applies."""

    name: str
    intent: str
    match: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()

    def applies(self, text: str) -> bool:
        """Whether the normalised `text` belongs to this class."""
        return any(p.search(text) for p in self.match) and not any(
            p.search(text) for p in self.unless
        )


@dataclass(frozen=True)
class Verdict:
    """The intent the rules give a message, and the rule that gave it."""

    intent: str
    rule: str

    @property
    def imminent_danger(self) -> bool:
        return self.rule == "imminent_danger"


def prepare(text: str) -> str:
    """The form every pattern is matched against: Simplified, half-width, lower case."""
    return normalize_text(text or "").lower()


class CriticalMessages:
    """The compiled rules of the policy's `critical_messages` section."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def verdict(self, text: str) -> Verdict | None:
        """The first rule that applies to `text`, or None."""
        prepared = prepare(text)
        for rule in self._rules:
            if rule.applies(prepared):
                return Verdict(rule.intent, rule.name)
        return None

    def is_imminent_danger(self, text: str) -> bool:
        """Whether `text` speaks of a danger to life now (a place, a means, "now")."""
        verdict = self.verdict(text)
        return verdict is not None and verdict.imminent_danger

    def correct(self, predicted: str | None, text: str) -> Verdict | None:
        """The intent that should replace the classifier's `predicted`, or None to keep it.

        A rule wins over any prediction that is not itself a more urgent critical
        intent; "I cannot pay" replaces only a refusal, a fallback or small talk.
        """
        verdict = self.verdict(text)
        if verdict is None or verdict.intent == predicted:
            return None
        if predicted in URGENCY and URGENCY.index(predicted) < URGENCY.index(verdict.intent):
            return None
        if verdict.intent == HARDSHIP and predicted not in INABILITY_REPLACES:
            if predicted not in INABILITY_REPLACES_UNLESS_ASKED or ASKS.search(prepare(text)):
                return None
        return verdict
