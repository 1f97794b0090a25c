"""Fan-out on a local Dask cluster vs the thread pool: many small tasks, and one-second tasks.

    python bench/dask_fanout.py [--small] [--workers 2] [--threads 16]

Each figure is the wall time of one flow run that maps a task over N inputs and collects the
results, with full tracking into the in-memory reporter. "small": a task that adds 1 (what
the per-task overhead of each runner costs); "1 s": a task that sleeps a second (what fan-out
width buys). The Dask runs start a `LocalCluster` of `--workers` processes for the run (its
start-up is timed apart); the thread pool gets the same number of threads in total
(`--workers * --threads` for the one-second tasks). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("SLUICE_LOGGING_LEVEL", "WARNING")

from _common import machine, record  # noqa: E402

from sluice import flow, task, use_reporter  # noqa: E402
from sluice.reporting import InMemoryReporter  # noqa: E402
from sluice.task_runners import DaskTaskRunner, ThreadPoolTaskRunner  # noqa: E402


@task
def add_one(x: int) -> int:
    return x + 1


@task
def one_second(x: int) -> int:
    time.sleep(1)
    return x


def fan_out(runner, work, n: int) -> float:
    """Seconds for one flow run mapping `work` over n inputs on `runner` (results collected)."""

    @flow(name="fan-out", task_runner=runner)
    def run(n: int) -> int:
        return len(work.map(range(n)).result())

    reporter = InMemoryReporter()
    with use_reporter(reporter):
        start = time.perf_counter()
        assert run(n) == n
        seconds = time.perf_counter() - start
    assert sum(r.state.is_completed() for r in reporter.task_runs.values()) == n
    return seconds


def dask_startup(workers: int, threads: int) -> float:
    """Seconds to start and close a LocalCluster with a client (what a Dask run adds)."""
    runner = DaskTaskRunner(cluster_kwargs=cluster_kwargs(workers, threads))
    start = time.perf_counter()
    runner.start()
    runner.shutdown()
    return time.perf_counter() - start


def cluster_kwargs(workers: int, threads: int) -> dict[str, object]:
    return {"n_workers": workers, "threads_per_worker": threads, "processes": True,
            "dashboard_address": ":0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true",
                        help="1,000 small and 40 one-second tasks (instead of 10,000 and 200)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--threads", type=int, default=16,
                        help="threads per Dask worker for the one-second tasks")
    args = parser.parse_args()
    n_small, n_slow = (1_000, 40) if args.small else (10_000, 200)
    width = args.workers * args.threads
    print(f"dask fan-out on {machine()}")
    startup = dask_startup(args.workers, 1)
    print(f"LocalCluster start + close ({args.workers} workers): {startup:.2f} s (included "
          "in the Dask figures below)")
    rows = [
        (f"{n_small} small tasks", "thread pool (default size)",
         fan_out(ThreadPoolTaskRunner(), add_one, n_small), n_small),
        (f"{n_small} small tasks", f"dask {args.workers}x1",
         fan_out(DaskTaskRunner(cluster_kwargs=cluster_kwargs(args.workers, 1)), add_one,
                 n_small), n_small),
        (f"{n_slow} one-second tasks", f"thread pool ({width} threads)",
         fan_out(ThreadPoolTaskRunner(max_workers=width), one_second, n_slow), n_slow),
        (f"{n_slow} one-second tasks", f"dask {args.workers}x{args.threads}",
         fan_out(DaskTaskRunner(cluster_kwargs=cluster_kwargs(args.workers, args.threads)),
                 one_second, n_slow), n_slow),
    ]
    print(f"{'work':>24} | {'runner':>27} | {'seconds':>8} | {'tasks/s':>8}")
    figures = {}
    for work, runner, seconds, n in rows:
        print(f"{work:>24} | {runner:>27} | {seconds:>8.2f} | {n / seconds:>8.1f}", flush=True)
        figures[f"{work} / {runner}"] = {"seconds": round(seconds, 2),
                                         "tasks_per_second": round(n / seconds, 1)}
    record("dask_fanout" + ("_small" if args.small else ""),
           {"dask_startup_seconds": round(startup, 2), "runs": figures})


if __name__ == "__main__":
    main()
