"""How fast the console renders at real sizes, measured in the browser (issue 16).

    python bench/console_render.py [--runs 100000] [--loads 5]

Seeds --runs flow runs over the last 7 days and 40 deployments into a fresh SQLite store with
bench/console_api.py's `seed` (the rows the store adapter itself writes, in bulk), starts an
embedded server on that data directory in its own process, and in headless Chromium (Debian's,
driven by Playwright) times navigation -> the page root's `data-ready="true"` for the dashboard
(/ui/) and the runs list (/ui/runs): one unmeasured load to warm the caches, then the median of
--loads full page loads each. Also prints the latency of the API calls those pages start with
(through httpx over loopback, for context).
Target: < 1 s for both pages with 100,000 runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, record  # noqa: E402
from server_process import connection, embedded_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
PAGES = {"dashboard": "/ui/", "runs": "/ui/runs"}
TARGET_SECONDS = 1.0


def why_not_runnable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: run `make install` (it is in the dev extras)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install chromium` (as root)"
    if not (REPO / "sdk" / "sluice" / "console_assets" / "index.html").exists():
        return "the console is not built: run `make console`"
    return None


def seed_store(data_dir: Path, runs: int) -> float:
    """Seed the store the server will open; returns the seconds it took."""
    from types import SimpleNamespace

    from console_api import seed

    from sluice_functions.adapters.sqlite import SqliteRunStore

    data_dir.mkdir(parents=True, mode=0o700)
    started = time.perf_counter()
    with SqliteRunStore(data_dir / "store.db") as store:
        # `seed` takes an embedded server; it only uses the store of its ports.
        seed(SimpleNamespace(ports=SimpleNamespace(store=store)), runs, 7.0,
             datetime.now(timezone.utc))
    return time.perf_counter() - started


def _api(conn):  # noqa: ANN001, ANN202 - a Connection; an httpx client with its token
    import httpx

    return httpx.Client(base_url=conn.api_url, timeout=30,
                        headers={"authorization": f"Bearer {conn.api_token}"})


def api_latency(conn, loads: int) -> dict[str, float]:  # noqa: ANN001
    """Median ms of the calls the two pages start with (for context, not the target)."""
    until = datetime.now(timezone.utc)
    calls = {
        "stats_24h": ("/stats/flow-runs", {"since": (until - timedelta(days=1)).isoformat(),
                                           "until": until.isoformat(),
                                           "bucket_seconds": 3600}),
        "stats_7d": ("/stats/flow-runs", {"since": (until - timedelta(days=7)).isoformat(),
                                          "until": until.isoformat(),
                                          "bucket_seconds": 21600}),
        "flow_runs_page": ("/flow-runs", {"limit": 50}),
    }
    figures = {}
    with _api(conn) as api:
        for name, (path, params) in calls.items():
            times = []
            for _ in range(loads + 1):
                started = time.perf_counter()
                response = api.get(path, params=params)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    print(f"  {path}: {response.status_code} {response.text[:200]}")
                    break
            figures[f"{name}_ms"] = round(median(times[1:] or times), 1)
    return figures


def page_load_seconds(url: str, token: str, loads: int) -> dict[str, list[float]]:
    """Per page: the seconds from navigation to `data-ready`, for `loads` warm loads."""
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(f"{url}/ui/#token={token}")  # the token, once, as the server prints it
        for name, path in PAGES.items():
            ready = f'[data-testid="page-{name}"][data-ready="true"]'
            timings[name] = []
            for attempt in range(loads + 1):  # the first load warms the caches
                started = time.perf_counter()
                page.goto(f"{url}{path}", wait_until="commit")
                page.wait_for_selector(ready, timeout=60_000)
                if attempt:
                    timings[name].append(time.perf_counter() - started)
        browser.close()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    reason = why_not_runnable()
    if reason:
        print(f"console_render: cannot run: {reason}", file=sys.stderr)
        return 2
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="sluice-console-bench-")) / "data"
    print(f"console render in Chromium on {machine()}")
    seconds = seed_store(data_dir, args.runs)
    print(f"seeded {args.runs:,} runs in {seconds:.1f} s")
    with embedded_server("--data-dir", str(data_dir)) as url:
        conn = connection(url)
        api = api_latency(conn, args.loads)
        timings = page_load_seconds(url, conn.api_token, args.loads)
    figures = {"runs": args.runs, "loads": args.loads, "target_s": TARGET_SECONDS, **api}
    print(f"\n{'page':<12}{'median s':>10}{'max s':>10}   (navigation -> data-ready, "
          f"{args.loads} warm loads)")
    for name, values in timings.items():
        figures[f"{name}_median_s"] = round(median(values), 3)
        figures[f"{name}_max_s"] = round(max(values), 3)
        print(f"{name:<12}{median(values):>10.3f}{max(values):>10.3f}")
    print("api (ms, median): " + ", ".join(f"{k[:-3]} {v}" for k, v in api.items()))
    record("console_render", figures)
    slow = [name for name in PAGES if figures[f"{name}_median_s"] >= TARGET_SECONDS]
    if slow:
        print(f"over the {TARGET_SECONDS} s target: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
