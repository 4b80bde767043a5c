"""The Botium suite of `tests/botium/` against the live stack, as other teams run it.

`tests/botium/run.js` plays every `convos/*.convo.txt` over the REST channel,
each convo in a conversation of its own, with botium-core's SIMPLEREST connector
configured by `tests/botium/botium.json`. The test fails with Botium's output
when a convo fails, and when fewer convos ran than there are convo files (a file
Botium silently read nothing from).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.domain.conduct import conduct_problems
from tests.support.conversations import FORBIDDEN_EVERYWHERE

pytestmark = [pytest.mark.e2e, pytest.mark.dialogue]

BOTIUM = Path(__file__).resolve().parent.parent / "botium"
CONVOS = BOTIUM / "convos"
#: The whole suite, one convo after the other; a convo takes a few seconds.
TIMEOUT_SECONDS = 600


def _bot_replies(report: dict[str, Any]) -> list[str]:
    return [
        step.get("text") or ""
        for result in report["results"]
        for step in result["steps"]
        if step.get("sender") == "bot"
    ]


def test_the_botium_suite_passes(rasa_url: str, lift_holds: None, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Botium suite needs Node.js 20 or later")
    if not (BOTIUM / "node_modules" / "botium-core").is_dir():
        pytest.fail("botium-core is not installed: run `make install` (npm ci in tests/botium)")
    files = sorted(path.name for path in CONVOS.glob("*.convo.txt"))
    assert len(files) >= 10, files

    report_file = tmp_path / "botium-report.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOTIUM_")}
    env.pop("RASA_URL", None)
    result = subprocess.run(
        [node, "run.js", "--url", rasa_url, "--convos", str(CONVOS), "--report", str(report_file)],
        cwd=BOTIUM,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    output = f"{result.stdout}\n{result.stderr}"
    print(output)  # shown with `pytest -s` or `-rP`
    assert result.returncode == 0, f"Botium failed (exit {result.returncode}):\n{output}"

    report = json.loads(report_file.read_text(encoding="utf-8"))
    ran = sorted(convo["file"] for convo in report["results"])
    assert ran == files, f"convo files {files}, but Botium ran {ran}:\n{output}"
    assert all(convo["passed"] for convo in report["results"]), output

    replies = _bot_replies(report)
    assert len(replies) >= len(files), output
    for reply in replies:
        problems = conduct_problems(reply)
        problems += [f"forbidden {s!r}" for s in FORBIDDEN_EVERYWHERE if re.search(s, reply)]
        assert not problems, f"reply breaks the rules of conduct: {problems}: {reply!r}"
