"""Fail when the held-out NLU evaluation falls below the agreed quality bar.

`rasa test nlu --successes` writes `intent_report.json`, `intent_successes.json`
and `intent_errors.json`. This reads them with the held-out files they came
from and reports, for the whole held-out directory, the intent macro-F1; and
for the held-out set written in the registers debtors use (`--registers`), the
intent accuracy, each intent's recall and the recall of the critical intents,
the ones whose miss hurts a debtor most. It exits non-zero below any minimum
and writes the figures to `summary.json` beside the reports.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.domain.normalize import normalize_text

SUMMARY_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}
#: Intents whose miss leaves a debtor in danger, unheard or wrongly referred.
CRITICAL_INTENTS = (
    "express_distress",
    "complain",
    "dispute_debt",
    "request_human",
    "state_hardship",
    "refuse_payment",
)


def macro_f1(report: dict) -> float:
    """The macro-averaged F1 of a Rasa/scikit-learn classification report."""
    return float(report["macro avg"]["f1-score"])


def weakest(report: dict, count: int = 5) -> list[tuple[str, float]]:
    """The `count` labels with the lowest F1, lowest first."""
    labels = [(k, float(v["f1-score"])) for k, v in report.items() if k not in SUMMARY_KEYS]
    return sorted(labels, key=lambda item: item[1])[:count]


def _key(text: str) -> str:
    return normalize_text(text).strip()


def held_out_texts(path: Path) -> dict[str, str]:
    """Each example of an NLU YAML file, normalised, mapped to its intent."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    texts = {}
    for block in data.get("nlu") or []:
        if "intent" not in block:
            continue
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                text = re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})", r"\1", line[2:])
                texts[_key(text)] = block["intent"].split("/")[0]
    return texts


@dataclass(frozen=True)
class Evaluation:
    """Intent predictions of one held-out set: (expected, predicted) per example."""

    pairs: tuple[tuple[str, str], ...]
    #: The normalised texts evaluated.
    texts: frozenset[str] = frozenset()

    @property
    def accuracy(self) -> float:
        return sum(e == p for e, p in self.pairs) / len(self.pairs) if self.pairs else 0.0

    def recall(self, intents: tuple[str, ...] | None = None) -> float:
        chosen = [(e, p) for e, p in self.pairs if intents is None or e in intents]
        return sum(e == p for e, p in chosen) / len(chosen) if chosen else 0.0

    def recalls(self) -> dict[str, float]:
        return {intent: self.recall((intent,)) for intent in sorted({e for e, _ in self.pairs})}

    def confusions(self, count: int = 8) -> list[tuple[tuple[str, str], int]]:
        return Counter((e, p) for e, p in self.pairs if e != p).most_common(count)


def evaluation_of(results: Path, held_out: dict[str, str]) -> Evaluation:
    """The predictions `rasa test nlu --successes` made for the texts of `held_out`."""
    pairs = []
    texts = set()
    for name in ("intent_successes.json", "intent_errors.json"):
        path = results / name
        if not path.exists():
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            if _key(item["text"]) in held_out:
                texts.add(_key(item["text"]))
                predicted = (item.get("intent_prediction") or {}).get("name") or "None"
                pairs.append((item["intent"].split("/")[0], predicted.split("/")[0]))
    return Evaluation(tuple(pairs), frozenset(texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--min-macro-f1", type=float, default=0.90)
    parser.add_argument("--registers", type=Path, help="the held-out set in debtors' registers")
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    parser.add_argument("--min-critical-recall", type=float, default=0.98)
    args = parser.parse_args(argv)

    failures = []
    intents = json.loads((args.results / "intent_report.json").read_text())
    score = macro_f1(intents)
    summary: dict[str, object] = {"macro_f1": round(score, 4)}
    print(f"intent macro-F1, all held-out sets: {score:.3f} (minimum {args.min_macro_f1:.2f})")
    for label, f1 in weakest(intents):
        print(f"  {label}: {f1:.3f}")
    if score < args.min_macro_f1:
        failures.append("intent macro-F1 is below the minimum")
    responses = args.results / "response_selection_report.json"
    if responses.exists():
        print(f"FAQ response selection macro-F1: {macro_f1(json.loads(responses.read_text())):.3f}")

    if args.registers:
        expected = held_out_texts(args.registers)
        result = evaluation_of(args.results, expected)
        missing = set(expected) - result.texts
        if missing:
            failures.append(f"{len(missing)} examples of {args.registers} were not evaluated")
        critical = result.recall(CRITICAL_INTENTS)
        summary.update(
            registers_examples=len(result.pairs),
            registers_accuracy=round(result.accuracy, 4),
            registers_critical_recall=round(critical, 4),
            registers_recall={k: round(v, 4) for k, v in result.recalls().items()},
        )
        print(f"{args.registers.name}: {len(result.pairs)} examples")
        print(f"  intent accuracy: {result.accuracy:.3f} (minimum {args.min_accuracy:.2f})")
        print(f"  critical recall: {critical:.3f} (minimum {args.min_critical_recall:.2f})")
        for intent, recall in result.recalls().items():
            mark = " *" if intent in CRITICAL_INTENTS else ""
            print(f"    {intent:<22} {recall:.3f}{mark}")
        for (wanted, got), count in result.confusions():
            print(f"  {wanted} read as {got}: {count}")
        if result.accuracy < args.min_accuracy:
            failures.append("intent accuracy on the registers set is below the minimum")
        if critical < args.min_critical_recall:
            failures.append("critical-intent recall on the registers set is below the minimum")

    text = json.dumps(summary, indent=2, ensure_ascii=False)
    (args.results / "summary.json").write_text(text)
    if args.registers:
        # One file per registers set, so a second report does not hide the first.
        (args.results / f"summary-{args.registers.stem}.json").write_text(text)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
