"""The console's API calls at real sizes: 100,000 runs in the embedded (SQLite) store.

    python bench/console_api.py [--runs 100000] [--days 7] [--repeat 20]

Seeds the runs straight into a fresh SQLite run store (one executemany through the adapter's
connection, with the rows the adapter itself would write), then times, in-process through the
embedded server's API handler (no network, no browser), the calls the dashboard and the runs
list make: `GET /stats/flow-runs` over 24 h and 7 d, `GET /flow-runs?limit=50` (and filtered by
state and by flow), and `GET /stats/deployments`. By default every run falls in the last 7 days,
so the 7-day count aggregates all 100,000 (the worst case). It also prints SQLite's query plans,
to show the counts read an index, not the table.

Targets: `/stats/flow-runs` (24 h, 7 d) p50 well under 200 ms, `/flow-runs?limit=50` under
100 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).parent))

from _common import median, percentile, record  # noqa: E402

from sluice.models import Deployment, FlowRun, Schedule, State, StateType  # noqa: E402
from sluice_functions.adapters.sqlite.store_sql import (  # noqa: E402
    FLOW_RUN_COLUMNS,
    filter_clauses,
    flow_run_row,
    where_sql,
)
from sluice_functions.embedded.server import EmbeddedServer  # noqa: E402
from sluice_functions.ports import FlowRunFilter  # noqa: E402

FLOWS = 20
DEPLOYMENTS = 40
#: States of the seeded runs and their weights: mostly finished, some failing, a few waiting.
STATES = [(StateType.COMPLETED, "Completed", 80), (StateType.FAILED, "Failed", 8),
          (StateType.CRASHED, "Crashed", 2), (StateType.CANCELLED, "Cancelled", 2),
          (StateType.RUNNING, "Running", 3), (StateType.SCHEDULED, "Late", 3),
          (StateType.SCHEDULED, "Scheduled", 2)]
SEED_BATCH = 5000


def seed(server: EmbeddedServer, runs: int, days: float, now: datetime) -> None:
    store = server.ports.store
    for n in range(DEPLOYMENTS):
        store.upsert_deployment(Deployment(
            id=f"dep-{n:03d}", flow_name=f"flow-{n % FLOWS:02d}", name=f"deploy-{n:03d}",
            entrypoint="flows.py:main", schedules=[Schedule(cron=f"{n % 60} * * * *")]))
    rng = random.Random(16)
    kinds = [(t, name) for t, name, _ in STATES]
    weights = [w for _, _, w in STATES]
    span = days * 86400
    rows = []
    for i in range(runs):
        at = now - timedelta(seconds=rng.random() * span)
        state_type, name = rng.choices(kinds, weights)[0]
        deployment = rng.randrange(DEPLOYMENTS)
        run = FlowRun(id=f"{int(at.timestamp() * 1e6):016x}-{i:08d}",
                      flow_name=f"flow-{deployment % FLOWS:02d}", name=f"run-{i}",
                      deployment_id=f"dep-{deployment:03d}", pool="default",
                      state=State(type=state_type, name=name, timestamp=at),
                      parameters={"day": at.date().isoformat()}, tags=["bench"],
                      scheduled_at=at, version=1)
        rows.append(flow_run_row(run, run.model_dump_json()))
        if len(rows) == SEED_BATCH or i == runs - 1:
            with store._db.write() as conn:  # noqa: SLF001 - a benchmark's bulk load
                conn.executemany(f"INSERT INTO flow_runs ({FLOW_RUN_COLUMNS}) VALUES"
                                 " (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    with store._db.write() as conn:  # noqa: SLF001
        conn.execute("ANALYZE")


def timed(server: EmbeddedServer, path: str, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        status, _, body = server.handle_api("GET", path, {}, b"", "127.0.0.1")
        samples.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise SystemExit(f"{path} answered {status}: {body[:300]!r}")
    return {"p50_ms": round(median(samples), 2), "p95_ms": round(percentile(samples, 95), 2),
            "bytes": len(body)}


def query_plans(server: EmbeddedServer, now: datetime) -> dict[str, list[str]]:
    """SQLite's plan of the count and of the list, as the adapter runs them."""
    week = FlowRunFilter(scheduled_after=now - timedelta(days=7), scheduled_before=now)
    where, params = filter_clauses(week)
    statements = {
        "stats 7 d": (f"SELECT (scheduled_us - 0) / 3600000000 AS bucket, state_type, COUNT(*)"
                      f" FROM flow_runs {where_sql(where)} GROUP BY bucket, state_type", params),
        "list 50": ("SELECT scheduled_us, id, doc FROM flow_runs"
                    " ORDER BY scheduled_us DESC, id DESC LIMIT 51", []),
    }
    plans = {}
    with server.ports.store._db.read() as conn:  # noqa: SLF001
        for label, (sql, args) in statements.items():
            plans[label] = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=7.0,
                        help="the runs are spread over this many days before now")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="sluice-console-bench-") as data:
        server = EmbeddedServer(data_dir=Path(data), port=0, tick_seconds=3600).start()
        try:
            started = time.perf_counter()
            seed(server, args.runs, args.days, now)
            seeded_s = time.perf_counter() - started
            day = urlencode({"since": (now - timedelta(days=1)).isoformat(),
                             "until": now.isoformat(), "bucket_seconds": 3600})
            week = urlencode({"since": (now - timedelta(days=7)).isoformat(),
                              "until": now.isoformat(), "bucket_seconds": 3600})
            calls = {
                "stats_24h": f"/stats/flow-runs?{day}",
                "stats_7d": f"/stats/flow-runs?{week}",
                "stats_7d_one_flow": f"/stats/flow-runs?{week}&flow_name=flow-03",
                "list_50": "/flow-runs?limit=50",
                "list_50_failed": "/flow-runs?limit=50&state_type=FAILED",
                "list_50_one_flow": "/flow-runs?limit=50&flow_name=flow-03",
                "list_50_tag": "/flow-runs?limit=50&tag=bench",
                "deployments": "/stats/deployments",
            }
            figures = {name: timed(server, path, args.repeat) for name, path in calls.items()}
            plans = query_plans(server, now)
        finally:
            server.stop()
    print(f"{args.runs} runs over {args.days:g} days, seeded in {seeded_s:.1f} s; "
          f"median of {args.repeat} in-process calls")
    for name, figure in figures.items():
        print(f"  {name:<20} p50 {figure['p50_ms']:>8.2f} ms   p95 {figure['p95_ms']:>8.2f} ms"
              f"   {figure['bytes']:>7} bytes")
    for label, plan in plans.items():
        print(f"  plan {label}: {' / '.join(plan)}")
    print(json.dumps({"targets": {"stats_ms": 200, "list_ms": 100}}))
    record("console_api", {"runs": args.runs, "days": args.days, "calls": figures,
                           "plans": plans})


if __name__ == "__main__":
    main()
