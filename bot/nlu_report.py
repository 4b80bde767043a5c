"""Fail when the held-out NLU evaluation falls below the agreed quality bar.

`rasa test nlu` writes `intent_report.json` (and, for the FAQ retrieval intent,
`response_selection_report.json`); this reads them, prints the weakest intents
and exits non-zero when the intent macro-F1 is below the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUMMARY_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}


def macro_f1(report: dict) -> float:
    """The macro-averaged F1 of a Rasa/scikit-learn classification report."""
    return float(report["macro avg"]["f1-score"])


def weakest(report: dict, count: int = 5) -> list[tuple[str, float]]:
    """The `count` labels with the lowest F1, lowest first."""
    labels = [(k, float(v["f1-score"])) for k, v in report.items() if k not in SUMMARY_KEYS]
    return sorted(labels, key=lambda item: item[1])[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--min-macro-f1", type=float, default=0.90)
    args = parser.parse_args(argv)

    intents = json.loads((args.results / "intent_report.json").read_text())
    score = macro_f1(intents)
    print(f"intent macro-F1: {score:.3f} (minimum {args.min_macro_f1:.2f})")
    for label, f1 in weakest(intents):
        print(f"  {label}: {f1:.3f}")
    responses = args.results / "response_selection_report.json"
    if responses.exists():
        print(f"FAQ response selection macro-F1: {macro_f1(json.loads(responses.read_text())):.3f}")
    if score < args.min_macro_f1:
        print("intent macro-F1 is below the minimum", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
