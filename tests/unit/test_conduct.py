"""Every text the assistant can say keeps to the rules of conduct."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.domain.conduct import conduct_problems

ROOT = Path(__file__).resolve().parents[2]
RESPONSE_FILES = [ROOT / "domain.yml", *sorted((ROOT / "data").rglob("*.yml"))]


def _responses() -> list[tuple[str, str]]:
    found = []
    for path in RESPONSE_FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for name, variants in (data.get("responses") or {}).items():
            for variant in variants:
                texts = [variant.get("text") or ""]
                texts += [button.get("title", "") for button in variant.get("buttons") or []]
                found += [(f"{path.name}:{name}", text) for text in texts if text]
    return found


RESPONSES = _responses()


def test_every_response_file_was_read() -> None:
    names = {name.split(":", 1)[1] for name, _ in RESPONSES}
    assert "utter_collections_referral" in names
    assert any(name.startswith("utter_faq/") for name in names)


@pytest.mark.parametrize(("name", "text"), RESPONSES, ids=[name for name, _ in RESPONSES])
def test_no_response_threatens_insults_or_impersonates(name: str, text: str) -> None:
    assert conduct_problems(text) == []


@pytest.mark.parametrize(
    ("text", "broken"),
    [
        ("再不还钱你会坐牢的", "mentions arrest or jail"),
        ("我们将上报公安，逮捕你", "mentions arrest or jail"),
        ("不还后果自负", "threatens"),
        ("我们会通知你的单位和家人", "threatens"),
        ("你这个老赖", "insults"),
        ("我们是法院的，请配合", "claims to be a court, the police or the government"),
        ("本院已受理", "claims to be a court, the police or the government"),
    ],
)
def test_the_check_finds_what_it_must(text: str, broken: str) -> None:
    problems = conduct_problems(text)
    assert problems and problems[0].startswith(broken)


def test_an_honest_reply_passes() -> None:
    assert conduct_problems("逾期会影响征信，您可以申请协商还款，我们不会联系您的家人。") == []
