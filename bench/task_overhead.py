"""Per-task overhead: microseconds per tracked task over a plain function call.

    python bench/task_overhead.py [--n 1000 10000] [--repeats 5] [--mode server] [--own-core]

Sequential calls and `.map`, with full tracking into the in-memory reporter (what a flow gets
with no control plane), or with `--mode server` into an embedded server in another process.
Targets: <= 50 us per sequential task, <= 40 us per mapped task in memory (issue 20); with a
server, within 1.5x of the in-memory figures.

By default the server shares every core with the benchmark, so its own work (storing each
record) competes with the flow for the CPU. On AWS the control plane runs elsewhere (Lambda);
`--own-core` comes closer to that on one machine: the server runs on the last core and the
benchmark on the others (in both modes, so the figures compare). Linux, 2 cores or more.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# Measure the engine, not a terminal: run loggers still record, the console shows warnings only.
os.environ.setdefault("SLUICE_LOGGING_LEVEL", "WARNING")

from _common import machine, median, record  # noqa: E402
from server_process import split_cores  # noqa: E402

from sluice import flow, task, use_reporter  # noqa: E402
from sluice.reporting import InMemoryReporter  # noqa: E402


def trivial(x: int) -> int:
    return x + 1


tracked = task(trivial)


@flow
def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += tracked(i)
    return total


@flow
def mapped(n: int) -> int:
    return sum(f.result() for f in tracked.map(range(n)))


@flow
def empty(n: int) -> int:
    return n


def plain_loop(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += trivial(i)
    return time.perf_counter() - start


def timed_flow(fl, n: int, reporter_factory) -> tuple[float, float]:
    """(seconds of the whole call, seconds of it spent draining reports at the end)."""
    reporter = reporter_factory()
    drained = getattr(reporter, "drained_seconds", 0.0)
    with use_reporter(reporter):
        start = time.perf_counter()
        fl(n)
        total = time.perf_counter() - start
    return total, getattr(reporter, "drained_seconds", 0.0) - drained


def measure(n: int, repeats: int, reporter_factory) -> dict[str, float]:
    def runs(fl) -> tuple[float, float]:
        timings = [timed_flow(fl, n, reporter_factory) for _ in range(repeats)]
        return median([t for t, _ in timings]), median([t - d for t, d in timings])

    base, base_body = runs(empty)
    plain = median([plain_loop(n) for _ in range(repeats)])
    seq, seq_body = runs(sequential)
    par, par_body = runs(mapped)
    to_us = 1e6 / n
    return {
        "sequential_us_per_task": round((seq - base - plain) * to_us, 2),
        "mapped_us_per_task": round((par - base - plain) * to_us, 2),
        # Without the final drain: what user code feels while the flow runs.
        "sequential_us_per_task_during_run": round((seq_body - base_body - plain) * to_us, 2),
        "mapped_us_per_task_during_run": round((par_body - base_body - plain) * to_us, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", choices=["memory", "server"], default="memory",
                        help="memory: in-process tracking; server: report to an embedded "
                             "server started in another process (flushes included)")
    parser.add_argument("--own-core", action="store_true",
                        help="the server on a core of its own, the benchmark on the others")
    args = parser.parse_args()
    cores = split_cores() if args.own_core else None
    if args.own_core and cores is None:
        print("--own-core needs Linux and at least 2 cores: the server shares them")
    if cores is not None:
        os.sched_setaffinity(0, cores[0])
    placement = f", server on core {min(cores[1])} of its own" if cores else ""
    print(f"task overhead ({args.mode}{placement}) on {machine()}")
    figures = {}
    print(f"{'tasks':>8} | {'sequential us/task':>19} | {'mapped us/task':>15}"
          + (" | seq. during run | mapped during run" if args.mode == "server" else ""))
    with reporters(args.mode, cores[1] if cores else None) as factory:
        for n in args.n:
            result = measure(n, args.repeats, factory)
            figures[str(n)] = result
            extra = (f" | {result['sequential_us_per_task_during_run']:>15} | "
                     f"{result['mapped_us_per_task_during_run']:>17}"
                     if args.mode == "server" else "")
            print(f"{n:>8} | {result['sequential_us_per_task']:>19} | "
                  f"{result['mapped_us_per_task']:>15}{extra}", flush=True)
    record(f"task_overhead_{args.mode}" + ("_own_core" if cores else ""),
           {"repeats": args.repeats, "by_task_count": figures})


@contextlib.contextmanager
def reporters(mode: str, server_cores: set[int] | None = None):
    """A factory of reporters for each timed flow run."""
    if mode == "memory":
        yield InMemoryReporter
        return
    from server_process import connection, embedded_server

    from sluice.client import SluiceClient
    from sluice.client.reporter import HttpReporter

    class DrainTimed(HttpReporter):
        """Counts the time flows spend at their end getting their last reports delivered: the
        whole final-state call (it waits for the run's buffered records, or since issue 20
        sends them with the state), so the figure means the same for either design."""

        drained_seconds = 0.0

        def set_flow_run_state(self, flow_run, state, transition_id):  # noqa: ANN001, ANN201
            if not state.is_terminal:
                return super().set_flow_run_state(flow_run, state, transition_id)
            start = time.perf_counter()
            try:
                return super().set_flow_run_state(flow_run, state, transition_id)
            finally:
                self.drained_seconds += time.perf_counter() - start

    with embedded_server(cores=server_cores) as url:
        client = SluiceClient(connection(url))
        reporter = DrainTimed(client)
        yield lambda: reporter
        reporter.close()



if __name__ == "__main__":
    main()
