"""Browser tests: the admin console and the supplier portal in headless Chromium (Debian's package,
driven by Playwright for Python), against the in-process local stack (`stack` in tests/conftest.py),
which serves the pages at /console/ and /portal/ as CloudFront does on AWS.

Chromium that cannot start is a failure, not a skip: `make test` installs it first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM = Path(os.environ.get("MARKETPLACE_CHROMIUM", "/usr/bin/chromium"))
# --disable-background-networking and friends: Chromium's own calls home are refused by a closed
# network and would otherwise slow or fail the start; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = ROOT / "build" / "screenshots"
UNLABELLED = """() => [...document.querySelectorAll("input, textarea, select, button")]
  .filter((e) => e.offsetParent !== null)
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                 && !(e.tagName === "BUTTON" && e.textContent.trim()))
  .map((e) => e.id || e.name || e.outerHTML.slice(0, 80))"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # Playwright's 5 s default for expect() is short on a loaded 2-core machine (the stack's
    # workflows run in the same process); every wait stays bounded.
    expect.set_options(timeout=20_000)

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        yield browser
        browser.close()


class Screen:
    """A browser tab with the JavaScript errors it raised and a screenshot helper."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.saved: list[Path] = []
        self.not_found: list[str] = []  # URLs that answered 404 (an API call's may be expected)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", lambda r: r.status == 404 and self.not_found.append(r.url))

    def unlabelled(self) -> list[str]:
        """Visible form controls and buttons without an accessible name."""
        return self.page.evaluate(UNLABELLED)

    def shot(self, name: str) -> Path:
        """Saves a screenshot of the screen, after checking every control on it has a name."""
        assert self.unlabelled() == [], f"{name}: controls without a label"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        return path


@pytest.fixture
def screen(browser) -> Iterator[Screen]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    screen = Screen(context.new_page())
    yield screen
    context.close()
