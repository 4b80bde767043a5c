"""Fixtures shared by the unit tests, and a cheaper garbage collector for them.

Nothing here needs a running service.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.support.database import copy_sqlite, seeded_sqlite


def pytest_sessionstart(session: pytest.Session) -> None:
    """No garbage collection while the test modules import Rasa, TensorFlow and spaCy.

    Importing them makes hundreds of thousands of objects that live until the end,
    and every full collection on the way walks all of them again.
    """
    gc.disable()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Set aside what the imports made (`gc.freeze`): collections see only the tests' objects."""
    gc.collect()
    gc.freeze()
    gc.enable()


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated by the real migrations and holding the demo debtors.

    Made once per run; each test gets a copy (`seeded_url`), so that no test sees
    another's changes and none pays for the migrations again.
    """
    return seeded_sqlite(tmp_path_factory.mktemp("seeded") / "template.db")


@pytest.fixture
def seeded_url(seeded_template: Path, tmp_path: Path) -> str:
    """URL of this test's own copy of the migrated and seeded SQLite database."""
    return copy_sqlite(seeded_template, tmp_path / "bank.db")
