"""Headless Chromium for the browser tests, from Debian's packages (`.ci/install-packages`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from bot.tools.stack import ROOT

#: Where the browser tests save their screenshots (kept for the README).
RESULTS = ROOT / "results"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
T = TypeVar("T")
#: Without the background-networking flags Chromium keeps trying to reach
#: Google's hosts, which a closed network refuses.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--lang=zh-CN",
)


@contextmanager
def chromium(
    profile: Path, window: tuple[int, int], mobile: dict[str, Any] | None = None
) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile in `profile` and a `window` (width, height)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if mobile is not None:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": mobile})
    # The driver is named explicitly: otherwise Selenium tries to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def eventually(check: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.15)


#: The phone screen the web chat page is tried on (CSS pixels, a 2x display).
PHONE = {"width": 390, "height": 844, "pixelRatio": 2}


@contextmanager
def phone_chromium(directory: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a 390x844 phone screen."""
    with chromium(directory, (PHONE["width"], PHONE["height"]), PHONE) as driver:
        yield driver
