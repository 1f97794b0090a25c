"""Screenshots of every console page for the README: docs/console/{dashboard,runs,run,
deployments,deployment,pools}.png at 1366x768.

    python tests/console/screenshots.py [--out docs/console]    (or `make screenshots`)

Starts an embedded server and a worker, runs the flows of tests/console/project plus a week of
backfilled history (so the charts have something to show), and photographs each page in
Debian's Chromium. The browser tests call `take_screenshots` too when
SLUICE_CONSOLE_SCREENSHOTS=1 (on their smaller world)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make `console.world` and `e2e.harness` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.world import (  # noqa: E402
    REPO,
    TERMINAL,
    VIEWPORT,
    ConsoleWorld,
    browser_missing_reason,
    chromium,
    console_world,
)
from e2e.harness import wait_for  # noqa: E402

DOCS = REPO / "docs" / "console"


def shots(world: ConsoleWorld) -> list[tuple[str, str, str]]:
    """(file name, console path, page root) of each screenshot."""
    return [
        ("dashboard", "/ui/", "dashboard"),
        ("runs", "/ui/runs", "runs"),
        ("run", f"/ui/runs/{world.runs['retried']}", "run"),
        ("deployments", "/ui/deployments", "deployments"),
        ("deployment", "/ui/deployments/nightly-etl/nightly", "deployment"),
        ("pools", "/ui/pools", "pools"),
    ]


def take_screenshots(world: ConsoleWorld, context: Any, out_dir: Path) -> list[Path]:
    """Open each page in `context` (a Playwright browser context), wait for its data and write
    its PNG into `out_dir`. Returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    page.set_viewport_size(VIEWPORT)
    page.goto(world.page_url("/ui/"))  # takes the token from the fragment once
    written = []
    for name, path, root in shots(world):
        page.goto(f"{world.sluice.url}{path}")
        page.locator(f'[data-testid="page-{root}"][data-ready="true"]').wait_for()
        # Charts draw on the next animation frames after their data: let them settle.
        page.wait_for_timeout(500)
        target = out_dir / f"{name}.png"
        page.screenshot(path=str(target))
        written.append(target)
    page.close()
    return written


def add_history(world: ConsoleWorld) -> None:
    """A week of nightly runs and a day of hourly ones (backfills), a few failures, and a
    second pool whose worker has gone: what a dashboard looks like after some use."""
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    with world.sluice.api() as api:
        for ref, days in (("nightly-etl/nightly", 7), ("pricing/hourly", 1),
                          ("flaky-report/daily", 3)):
            response = api.post(f"/deployments/{ref}/backfill", json={
                "start": (now - timedelta(days=days)).isoformat(), "end": now.isoformat()})
            assert response.status_code == 201, response.text
    world.sluice.cli("pool", "create", "reports")
    gone = world.sluice.start_worker("--pool", "reports", name="reports-worker")

    def reports_worker_seen() -> bool:
        with world.sluice.api() as api:
            workers = api.get("/pools/reports").json()["workers"]
        return any(worker["name"] == "reports-worker" for worker in workers)

    wait_for(reports_worker_seen, 30, "the reports worker to be seen")
    gone.stop()

    def all_finished() -> bool:
        """Every run that was due has ended (the long run and future schedules aside)."""
        with world.sluice.api() as api:
            page = api.get("/flow-runs", params={"limit": 200}).json()
        items = page["items"] if isinstance(page, dict) else page
        due = [run for run in items if run["id"] != world.runs["running"]
               and run["state"]["type"] not in TERMINAL
               and datetime.fromisoformat(run["scheduled_at"]) <= datetime.now(timezone.utc)]
        return not due

    wait_for(all_finished, 300, "the backfilled runs to finish", 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go")
    args = parser.parse_args()
    reason = browser_missing_reason()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sluice-screenshots-") as root, \
            console_world(Path(root)) as world, chromium() as browser:
        add_history(world)
        context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
        for target in take_screenshots(world, context, args.out):
            print(f"wrote {target}")
        context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
