"""`.ci/audit` (`make audit`) on small lock files and advisory snapshots of its own.

pip-audit runs for real, against a snapshot served on loopback as the snapshot
source serves the real one, or against an OSV address where nothing listens.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = "aiohttp==3.9.5\nrequests==2.34.2\n"


def advisory(ident: str, package: str, events: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": ident,
        "aliases": [f"CVE-{ident}"],
        "summary": f"a flaw of {package}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


#: One advisory that affects aiohttp 3.9.5, three that do not.
ADVISORIES = [
    advisory("TEST-1", "aiohttp", [{"introduced": "3.0"}, {"fixed": "3.10.2"}]),
    advisory("TEST-2", "aiohttp", [{"introduced": "0"}, {"fixed": "3.9.5"}]),
    advisory("TEST-3", "aiohttp", [{"introduced": "3.9.6"}, {"last_affected": "3.11"}]),
    advisory("TEST-4", "requests", [{"introduced": "0"}, {"fixed": "2.32.0"}]),
]


def run_audit(
    tmp_path: Path, accepted: str = "[]\n", **env: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "requirements.lock").write_text(LOCK, encoding="utf-8")
    (tmp_path / "accepted.yml").write_text(accepted, encoding="utf-8")
    header = {"snapshot": {"source": "test advisories", "date": "2026-12-01", "advisories": 4}}
    lines = [json.dumps(header)] + [json.dumps(a) for a in ADVISORIES]
    (tmp_path / "snapshot.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    variables = dict(
        os.environ,
        AUDIT_REQUIREMENTS=str(tmp_path / "requirements.lock"),
        AUDIT_ACCEPTED=str(tmp_path / "accepted.yml"),
        AUDIT_SNAPSHOT=str(tmp_path / "snapshot.jsonl"),
        AUDIT_SOURCE="snapshot",
    )
    variables.update(env)
    return subprocess.run(
        [str(ROOT / ".ci" / "audit")],
        cwd=ROOT,
        env=variables,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def accepting(review_by: date, ident: str = "TEST-1", package: str = "aiohttp") -> str:
    return (
        f"- id: {ident}\n  package: {package}\n"
        "  reason: held by rasa's pin; the flawed path is not used\n"
        f"  review_by: {review_by.isoformat()}\n"
    )


def test_an_advisory_not_accepted_fails(tmp_path: Path) -> None:
    result = run_audit(tmp_path)
    assert result.returncode == 1
    assert "2 of 2 pins of requirements.lock audited" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if "aiohttp 3.9.5" in line]
    assert "TEST-1" in line and "CVE-TEST-1" in line and "fixed in 3.10.2" in line
    for other in ("TEST-2", "TEST-3", "TEST-4"):
        assert other not in result.stderr + result.stdout


def test_an_accepted_advisory_passes_until_its_review_date(tmp_path: Path) -> None:
    result = run_audit(tmp_path, accepting(date.today() + timedelta(days=30)))
    assert result.returncode == 0, result.stderr
    assert "accepted until" in result.stdout and "held by rasa's pin" in result.stdout


def test_an_accepted_advisory_is_accepted_by_its_alias(tmp_path: Path) -> None:
    result = run_audit(tmp_path, accepting(date.today() + timedelta(days=1), "CVE-TEST-1"))
    assert result.returncode == 0, result.stderr


def test_an_advisory_accepted_for_another_package_fails(tmp_path: Path) -> None:
    result = run_audit(tmp_path, accepting(date.today() + timedelta(days=30), package="requests"))
    assert result.returncode == 1
    assert "TEST-1" in result.stderr


def test_an_accepted_advisory_past_its_review_date_fails(tmp_path: Path) -> None:
    result = run_audit(tmp_path, accepting(date.today() - timedelta(days=1)))
    assert result.returncode == 1
    assert "look at it again" in result.stderr


def test_an_accepted_advisory_no_longer_found_is_reported_not_failed(tmp_path: Path) -> None:
    accepted = accepting(date.today() + timedelta(days=30)) + accepting(
        date.today() + timedelta(days=30), "TEST-4", "requests"
    )
    result = run_audit(tmp_path, accepted)
    assert result.returncode == 0, result.stderr
    assert "no longer found: TEST-4 (requests)" in result.stdout


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("- id: TEST-1\n  package: aiohttp\n  review_by: 2030-01-01\n", "lacks reason"),
        ("- id: TEST-1\n  package: aiohttp\n  reason: x\n  review_by: soon\n", "must be a date"),
    ],
)
def test_an_incomplete_acceptance_fails(tmp_path: Path, entry: str, expected: str) -> None:
    result = run_audit(tmp_path, entry)
    assert result.returncode == 1
    assert expected in result.stderr


def test_an_unreachable_source_fails_with_its_cause(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_audit(
        tmp_path, AUDIT_SOURCE="osv", AUDIT_OSV_URL=f"http://127.0.0.1:{port}/v1/query"
    )
    assert result.returncode == 1
    assert "the advisory source (osv) cannot be reached" in result.stderr
    assert "nothing was audited" in result.stderr
    assert "audited against" not in result.stdout


def test_the_snapshot_is_dated_and_covers_the_lock() -> None:
    header = json.loads((ROOT / ".ci/advisories/pypi.jsonl").open(encoding="utf-8").readline())
    assert date.fromisoformat(header["snapshot"]["date"]) <= date.today()
    assert header["snapshot"]["advisories"] > 1000
