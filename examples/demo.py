"""`make demo`: run the example flows and print what happened.

Runs in this process and reports to memory; the control plane (server + worker) takes over as
it lands (see README)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from etl import orders_etl  # noqa: E402
from failing import strict_import  # noqa: E402
from sluice import use_reporter  # noqa: E402
from sluice.reporting import InMemoryReporter  # noqa: E402


def main() -> int:
    console = Console()
    reporter = InMemoryReporter()
    with use_reporter(reporter):
        etl_state = orders_etl(pages=6, return_state=True)
        fail_state = strict_import([{"amount": 3}, {"amount": -1}], return_state=True)

    table = Table(title="Flow runs")
    for column in ("flow", "run", "state", "duration", "task runs", "retried"):
        table.add_column(column)
    for run in reporter.flow_runs.values():
        tasks = reporter.task_runs_of(run.id)
        table.add_row(run.flow_name, run.name, run.state.name,
                      f"{run.duration_seconds:.2f} s",
                      str(len(tasks)), str(sum(t.run_count > 1 for t in tasks)))
    console.print(table)
    console.print(f"orders-etl returned {etl_state.result()}")
    console.print(f"strict-import failed with: [red]{fail_state.message}[/red]")
    etl_run = next(r for r in reporter.flow_runs.values() if r.flow_name == "orders-etl")
    console.print("orders-etl log excerpt:")
    for line in reporter.logs_of(etl_run.id)[:6]:
        console.print(f"  {line.timestamp:%H:%M:%S.%f} {line.level.value:<7} {line.message}")
    ok = etl_state.is_completed() and fail_state.is_failed()
    console.print("[green]demo finished as expected[/green]" if ok else "[red]unexpected[/red]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
