"""Debian's headless Chromium under Selenium, for the web view's tests and bench.

Nothing is downloaded: the browser and its driver are the ``chromium`` and
``chromium-driver`` packages (scripts/setup), named here by path so that
Selenium Manager has nothing to look up.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
T = TypeVar("T")


def have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def chromium(profile: Path, width: int = 1280, height: int = 800) -> WebDriver:
    """A headless Chromium with its console log kept (``browser_errors``)."""
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        # Tests run as root in CI, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def browser_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Console messages at SEVERE level since the last call."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """The first truthy result of ``check``; TimeoutError naming ``what`` past ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # a page mid-render: stale elements and the like
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or check}" + (f": {last}" if last else ""))
