"""The report and measurement helpers that CI and `make bench` rely on."""

import json
import math
from pathlib import Path

from bot.tools.bench import Result, percentile, report
from bot.tools.cluster import running_banner
from bot.tools.cluster_config import ClusterConfig
from bot.tools.nlu_report import evaluation_of, held_out_texts, weakest
from bot.tools.nlu_report import main as nlu_report_main
from tests.support.conversations import Turn, check_turn


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))


def test_bench_report_separates_early_and_late_turns() -> None:
    latencies = {turn: [0.1] for turn in range(1, 11)}
    latencies.update({turn: [0.2] for turn in range(11, 21)})
    text = report(Result(latencies=latencies, elapsed=3.0, errors=0), 1, 20)
    assert "turns 1-10: p50    100 ms" in text
    assert "turns 11-20: p50    200 ms" in text
    assert "late/early p50 ratio: 2.00" in text
    assert "6.7 replies/s" in text


def _write_report(directory: Path, f1: float) -> None:
    report = {
        "greet": {"f1-score": 1.0},
        "deny": {"f1-score": 0.5},
        "macro avg": {"f1-score": f1},
        "accuracy": 0.9,
    }
    (directory / "intent_report.json").write_text(json.dumps(report))


def test_nlu_report_fails_below_the_minimum(tmp_path: Path) -> None:
    _write_report(tmp_path, 0.85)
    assert nlu_report_main([str(tmp_path), "--min-macro-f1", "0.90"]) == 1


def test_nlu_report_passes_at_the_minimum(tmp_path: Path) -> None:
    _write_report(tmp_path, 0.90)
    assert nlu_report_main([str(tmp_path), "--min-macro-f1", "0.90"]) == 0


REGISTERS = """version: "3.1"
nlu:
- intent: state_hardship
  examples: |
    - 卡債繳不出來
    - 失业了还不上
- intent: greet
  examples: |
    - 在吗
    - 哈喽
"""


def _write_predictions(directory: Path, predicted: dict[str, str]) -> Path:
    """A registers set and `rasa test nlu --successes` output predicting `predicted`."""
    registers = directory / "registers.yml"
    registers.write_text(REGISTERS, encoding="utf-8")
    expected = held_out_texts(registers)
    _write_report(directory, 0.95)
    rows = {"intent_successes.json": [], "intent_errors.json": []}
    for text, intent in predicted.items():
        target = expected[text] if text in expected else "greet"
        name = "intent_successes.json" if intent == target else "intent_errors.json"
        rows[name].append(
            {"text": text, "intent": target, "intent_prediction": {"name": intent, "confidence": 1}}
        )
    for name, items in rows.items():
        (directory / name).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return registers


def test_registers_report_measures_accuracy_and_critical_recall(tmp_path: Path) -> None:
    registers = _write_predictions(
        tmp_path,
        {
            "卡债缴不出来": "refuse_payment",
            "失业了还不上": "state_hardship",
            "在吗": "greet",
            "哈喽": "greet",
        },
    )
    result = evaluation_of(tmp_path, held_out_texts(registers))
    assert result.accuracy == 0.75
    assert result.recalls() == {"greet": 1.0, "state_hardship": 0.5}
    assert result.confusions() == [(("state_hardship", "refuse_payment"), 1)]
    args = [str(tmp_path), "--registers", str(registers), "--min-accuracy", "0.7"]
    assert nlu_report_main(args) == 1  # critical recall 0.5 < 0.98
    assert nlu_report_main([*args, "--min-critical-recall", "0.5"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["registers_accuracy"] == 0.75
    per_set = tmp_path / f"summary-{registers.stem}.json"
    assert json.loads(per_set.read_text())["registers_accuracy"] == 0.75


def test_registers_report_fails_when_examples_were_not_evaluated(tmp_path: Path) -> None:
    registers = _write_predictions(tmp_path, {"在吗": "greet"})
    args = [str(tmp_path), "--registers", str(registers), "--min-accuracy", "0"]
    assert nlu_report_main([*args, "--min-critical-recall", "0"]) == 1


def test_weakest_ignores_summary_rows() -> None:
    rows = {"a": {"f1-score": 0.2}, "b": {"f1-score": 0.9}, "macro avg": {"f1-score": 0.1}}
    assert weakest(rows, 1) == [("a", 0.2)]


def test_turn_check_reports_every_problem() -> None:
    turn = Turn(user="x", contains=["征信"], any_of=["五年", "5年"], not_contains=["罚息"])
    problems = check_turn(turn, [{"text": "罚息会上升，不还会坐牢"}])
    assert problems[:3] == ["missing '征信'", "none of ['五年', '5年']", "must not contain '罚息'"]
    assert problems[3:] == ["mentions arrest or jail: '坐牢'"]


def test_turn_check_refuses_any_mention_of_jail_even_a_reassuring_one() -> None:
    # The assistant reassures without the word: "不涉及刑事责任".
    assert check_turn(Turn(user="x"), [{"text": "普通欠款还不上不会坐牢"}]) == [
        "mentions arrest or jail: '坐牢'"
    ]
    assert check_turn(Turn(user="x"), [{"text": "普通欠款不涉及刑事责任"}]) == []


def test_a_silent_turn_passes_only_when_silence_is_expected() -> None:
    assert check_turn(Turn(user="x", no_reply=True), []) == []
    assert check_turn(Turn(user="x", no_reply=True), [{"text": "您好"}]) == [
        "the bot replied although a person holds the conversation"
    ]


def test_turn_check_fails_on_silence_and_counts_buttons() -> None:
    assert check_turn(Turn(user="x"), []) == ["the bot did not reply"]
    buttons = [{"text": "请选择", "buttons": [{"title": "个性化分期", "payload": "/x"}]}]
    assert check_turn(Turn(user="x", contains=["个性化分期"]), buttons) == []


def test_the_cluster_banner_names_where_the_jwt_secret_is_never_the_secret(tmp_path: Path) -> None:
    secret = "s3cr3t-" + "x" * 30
    config = ClusterConfig(
        rasa_replicas=2, action_replicas=1, console_replicas=1, jwt_secret=secret, run_dir=tmp_path
    )
    text = running_banner(config, "demo", "pw-1", tmp_path / "rasa-jwt.key")
    assert secret not in text
    assert str(tmp_path / "rasa-jwt.key") in text
    assert "/webhooks/rest/webhook" in text and "user demo  password pw-1" in text
