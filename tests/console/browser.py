"""A real browser for the console's end-to-end tests: Debian's Chromium (`apt-get install -y chromium`;
`.ci/run` installs it) driven by Playwright with that executable. Playwright's own browser download cannot
work here, so none is ever used.

Where Chromium or Playwright is missing the tests skip and say what to install, unless
PIPELINE_BROWSER_TESTS=required (what `.ci/run` sets once it has installed the browser): then they fail.
PIPELINE_CHROMIUM names another Chromium-based executable (a runner's google-chrome, say).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# The flags that work on this kind of machine (no sandbox as root, no GPU, nothing fetched in the
# background); Playwright adds --headless and a fresh --user-data-dir of its own for every launch.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REQUIRED = "PIPELINE_BROWSER_TESTS"


def chromium_path() -> str | None:
    configured = os.environ.get("PIPELINE_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRED) == "required":
        pytest.fail(f"{reason} ({REQUIRED}=required: the browser tests must run here)")
    pytest.skip(reason)


def require_browser() -> str:
    """Chromium's path, once Playwright and Chromium are both there; otherwise the test skips (or fails,
    where they are required), saying what to install."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable(
            "the browser tests need Playwright: `make install` installs it from requirements-dev.lock"
        )
    executable = chromium_path()
    if executable is None:
        unavailable(
            "the browser tests need Chromium: `apt-get install -y chromium` (Debian's package) or "
            "PIPELINE_CHROMIUM=/path/to/chromium"
        )
    assert executable is not None
    return executable


@contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A headless Chromium browser (Playwright's `Browser`), closed at the end."""
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
