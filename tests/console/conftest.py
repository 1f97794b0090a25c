"""Fixtures of the console's browser tests: one system Chromium per module, one populated
embedded server + worker per module (starting them is the slow part), a fresh browser context
per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .world import (
    VIEWPORT,
    ConsoleWorld,
    browser_missing_reason,
    chromium,
    console_world,
    require_browser,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright; skipped (naming the fix) when it cannot run here,
    failed instead under SLUICE_REQUIRE_BROWSER=1 (CI). Module-scoped, not session-scoped:
    Playwright's sync API runs an asyncio loop on the main thread while it is started, and every
    later test calling `asyncio.run()` (async flows and tasks) would fail beside it."""
    reason = browser_missing_reason()
    if reason:
        if require_browser():
            pytest.fail(f"SLUICE_REQUIRE_BROWSER is set but {reason}", pytrace=False)
        pytest.skip(reason)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def world(browser, tmp_path_factory) -> Iterator[ConsoleWorld]:
    """The embedded server with a worker, deployments and runs in known states."""
    with console_world(tmp_path_factory.mktemp("console")) as populated:
        yield populated


@pytest.fixture
def context(browser) -> Iterator[Any]:
    """A fresh browser context (no cookies, storage or theme from another test)."""
    fresh = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    fresh.set_default_timeout(15_000)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context) -> Iterator[Any]:
    """A page that records uncaught script errors in `page.script_errors`."""
    opened = context.new_page()
    opened.script_errors = []
    opened.on("pageerror", lambda error: opened.script_errors.append(str(error)))
    yield opened
