"""What the console's browser tests, screenshots and benchmark share: the system Chromium and
an embedded server with a worker, deployments and runs in every interesting state.

Used by tests/console/conftest.py (as `console.world`) and by tests/console/screenshots.py run
as a script (which puts tests/ on sys.path first)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.harness import Sluice, free_port, wait_for

PROJECT = Path(__file__).parent / "project"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
#: Debian's Chromium as root, headless, on a machine with no network but the loopback: without
#: the background-networking flags it keeps trying (and failing) to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
VIEWPORT = {"width": 1366, "height": 768}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def console_is_built() -> bool:
    """Whether the server has console files to serve (SLUICE_CONSOLE_ASSETS or the package's)."""
    try:
        from sluice.console_files import console_built
    except ImportError:  # the Python side of the console is missing: the tests cannot run
        return False
    return console_built()


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can): the fix is in the text."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("Playwright for Python is not installed: run `make install` (it is in the dev "
                "extras)")
    if not Path(CHROMIUM).exists():
        return (f"no Chromium at {CHROMIUM}: install Debian's browser with `apt-get install "
                "chromium` (as root; .ci/run does it)")
    if not console_is_built():
        return "the console is not built: run `make console` (npm ci && npm run build)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """The system Chromium driven by Playwright (never a browser that Playwright downloads)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleWorld:
    """An embedded server and one worker, with deployments of tests/console/project/flows.py
    and runs in known states. `runs` names them by role."""

    sluice: Sluice
    data: Path
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.sluice.token

    def page_url(self, path: str = "/ui/", *, with_token: bool = True) -> str:
        """A console URL; with the operator token in the fragment, as a user pasting it would."""
        url = f"{self.sluice.url}{path}"
        return f"{url}#token={self.token}" if with_token else url

    # --- setting the world up ---------------------------------------------------------------

    def deploy(self, flow: str, name: str, *extra: str) -> None:
        self.sluice.cli("deploy", f"flows.py:{flow}", "--name", name, "--project-dir",
                        str(PROJECT), *extra, timeout=120)

    def trigger(self, ref: str, parameters: dict[str, Any] | None = None,
                tags: list[str] | None = None) -> str:
        body: dict[str, Any] = {"parameters": parameters or {}}
        if tags:
            body["tags"] = tags
        with self.sluice.api() as api:
            response = api.post(f"/deployments/{ref}/runs", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def state(self, run_id: str) -> dict[str, Any]:
        return self.sluice.run_state(run_id)["state"]

    def wait_state(self, run_id: str, types: set[str], timeout: float = 90) -> dict[str, Any]:
        return wait_for(lambda: (lambda s: s if s["type"] in types else None)(
            self.state(run_id)), timeout, f"run {run_id} to reach {sorted(types)}", 0.2)

    def populate(self) -> None:
        """Deployments with schedules and parameters, and runs: completed, failed, retried and
        cached tasks, a subflow, and one still running (to cancel)."""
        self.deploy("nightly_etl", "nightly", "--cron", "0 2 * * *", "--timezone",
                    "Europe/Berlin", "--tag", "etl")
        # Scheduled runs get the deployment's parameters: required ones need a default here.
        self.deploy("flaky_report", "daily", "--cron", "30 6 * * *", "--timezone", "UTC",
                    f"--param=marker={self.data / 'report-source'}")
        self.deploy("pricing", "hourly", "--interval", "3600",
                    f"--param=counter={self.data / 'scheduled-pricing-counter'}")
        self.deploy("long_backfill", "manual")
        self.deploy("parent_pipeline", "manual")
        self.runs["completed"] = self.trigger("nightly-etl/nightly", {"batches": 3},
                                              tags=["etl", "nightly"])
        self.runs["failed"] = self.trigger("flaky-report/daily",
                                           {"marker": str(self.data / "report-source")})
        self.runs["retried"] = self.trigger("pricing/hourly",
                                            {"counter": str(self.data / "pricing-counter")})
        self.runs["parent"] = self.trigger("parent-pipeline/manual")
        for role in ("completed", "failed", "retried", "parent"):
            self.wait_state(self.runs[role], TERMINAL)
        self.runs["running"] = self.trigger("long-backfill/manual", {"seconds": 600})
        self.wait_state(self.runs["running"], {"RUNNING"})


@contextmanager
def console_world(root: Path) -> Iterator[ConsoleWorld]:
    """A populated world under `root` (a fresh SLUICE_HOME), stopped afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    sluice = Sluice(root / "home", free_port())
    try:
        sluice.start_server()
        sluice.start_worker(name="console-worker")
        world = ConsoleWorld(sluice, data)
        world.populate()
        yield world
    finally:
        sluice.close()


def require_browser() -> bool:
    """In CI (SLUICE_REQUIRE_BROWSER=1) a missing browser fails the tests instead of skipping."""
    return os.environ.get("SLUICE_REQUIRE_BROWSER", "") not in ("", "0")
