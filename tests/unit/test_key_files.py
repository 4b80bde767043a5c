"""Key files are created readable by their owner only, never first with a wider mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.tools.stack import secret_file, webchat_session_key


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: only the mode given at creation protects the file."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_a_new_key_file_is_created_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the file created with the default mode and narrowed afterwards, it would
    # stay world-readable here, where narrowing is not possible.
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    path = tmp_path / "var" / "webchat-session.key"
    key = webchat_session_key(path)
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_key_is_kept_across_calls(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    assert secret_file(path) == secret_file(path)


def test_an_existing_readable_key_file_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.key"
    path.write_text("an-old-key-written-by-an-earlier-version", encoding="utf-8")
    path.chmod(0o644)
    assert secret_file(path) == "an-old-key-written-by-an-earlier-version"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_key_of_another_format_is_made_by_its_own_maker(tmp_path: Path) -> None:
    """The verification key (URL-safe base64 of 32 bytes) is kept the same way."""
    from bot.store.verification_progress import new_key

    path = tmp_path / "verification.key"
    key = secret_file(path, make=new_key)
    assert len(key) == 44 and key == secret_file(path, make=new_key)
    assert path.stat().st_mode & 0o777 == 0o600
