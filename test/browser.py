"""Headless Chromium for the teacher page's tests and benchmark: Debian's chromium + chromium-driver via Selenium.

The flags are the ones this machine needs: no sandbox as root, and no background
networking (the closed network refuses Chromium's own connections at every start).
"""

from __future__ import annotations

import shutil
from pathlib import Path

INSTALL_HINT = "`make test-browser` installs Debian's chromium and chromium-driver (and selenium)"


def find_chromium() -> tuple[str | None, str | None]:
    """(browser, driver) paths, None where missing."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    return browser, shutil.which("chromedriver")


def chromium(profile: Path, *extra: str):
    """A headless Chromium driven by Selenium, with a fresh profile in `profile`."""
    from selenium import webdriver

    browser, driver = find_chromium()
    if browser is None or driver is None:
        raise RuntimeError(f"no Chromium/chromedriver: {INSTALL_HINT}")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1360,900", f"--user-data-dir={profile}", *extra):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver))
