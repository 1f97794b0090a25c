"""Throughput: flow runs completed per minute with 1, 2 and 4 workers on the embedded server.

    python bench/throughput.py [--workers 1 2 4] [--limit 4] [--warmup 5] [--window 20]

For each worker count: a fresh embedded server (its own process and SLUICE_HOME), a trivial
deployed flow, a backlog of runs triggered before the workers start (and topped up while they
run, so the queue never empties), then `sluice worker start --limit N` processes. After the
warm-up, runs whose body finished inside the window are counted (each run stamps a file at
the end of its body; the final state follows within milliseconds). Prints runs per minute over
the whole window and the median of its 5-second slices, and how many runs ended in another
state than Completed. Everything shares this machine's cores: the server, the workers, their
flow processes and this driver.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, record  # noqa: E402
from pickup import stamps  # noqa: E402
from server_process import connection, embedded_server  # noqa: E402

FLOW = textwrap.dedent('''
    import os, time
    from sluice import flow

    @flow
    def trivial(stamp_file: str) -> None:
        with open(stamp_file, "a") as fh:
            fh.write(f"{os.environ['SLUICE_FLOW_RUN_ID']} {time.time():.6f}\\n")
''')
#: Width of the slices whose rates give the median.
SLICE_SECONDS = 5.0


class Feeder:
    """Triggers runs so that at least `ahead` are waiting: a backlog up front, then top-ups."""

    def __init__(self, client, ref: str, stamp_file: Path, ahead: int) -> None:  # noqa: ANN001
        self.client, self.ref, self.stamp_file, self.ahead = client, ref, stamp_file, ahead
        self.triggered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="feeder")

    def top_up(self) -> None:
        missing = self.ahead - (len(self.triggered) - len(stamps(self.stamp_file)))
        for _ in range(max(0, missing)):
            self.triggered.add(self.client.run_deployment(self.ref).id)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.top_up()

    def start(self) -> None:
        self.top_up()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def measure(workers: int, limit: int, warmup: float, window: float) -> dict:
    from sluice.client import SluiceClient
    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow
    from sluice.models import StateType

    project = Path(tempfile.mkdtemp(prefix="sluice-throughput-"))
    (project / "flows.py").write_text(FLOW)
    stamp_file = project / "stamps"
    with embedded_server() as url:
        client = SluiceClient(connection(url))
        deployment = deploy_flow(load_flow("flows.py:trivial", project), name="throughput",
                                 project_dir=project, entrypoint="flows.py:trivial",
                                 parameters={"stamp_file": str(stamp_file)}, client=client)
        # Enough waiting runs for every slot twice over, and a second's worth more.
        feeder = Feeder(client, f"{deployment.flow_name}/{deployment.name}", stamp_file,
                        ahead=workers * limit * 4)
        feeder.start()
        env = {**os.environ, "SLUICE_HOME": os.environ["SLUICE_BENCH_HOME"]}
        procs = [subprocess.Popen([sys.executable, "-m", "sluice.cli", "worker", "start",
                                   "--name", f"w{i}", "--limit", str(limit),
                                   "--shutdown-grace", "10"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(workers)]
        try:
            time.sleep(warmup)
            start = time.time()
            time.sleep(window)
            end = time.time()
        finally:
            feeder.stop()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(60)
        done = sorted(at for at in stamps(stamp_file).values())
        not_completed = sum(
            1 for state in (StateType.FAILED, StateType.CRASHED)
            for _ in client.iter_flow_runs(deployment_id=deployment.id, state_type=state))
    in_window = [at for at in done if start <= at < end]
    slices = int(window // SLICE_SECONDS)
    slice_rates = [
        60 * sum(1 for at in in_window
                 if start + i * SLICE_SECONDS <= at < start + (i + 1) * SLICE_SECONDS)
        / SLICE_SECONDS
        for i in range(slices)
    ]
    return {
        "workers": workers,
        "limit": limit,
        "runs_in_window": len(in_window),
        "runs_per_minute": round(60 * len(in_window) / (end - start), 1),
        "slice_median_runs_per_minute": round(median(slice_rates), 1) if slice_rates else None,
        "triggered": len(feeder.triggered),
        "not_completed": not_completed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit", type=int, default=4, help="runs at once per worker")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=20.0, help="seconds counted")
    args = parser.parse_args()
    print(f"throughput on {machine()}")
    print(f"{'workers':>7} | {'limit':>5} | {'runs/min':>8} | {'median of 5 s slices':>20} | "
          f"{'runs counted':>12} | not Completed", flush=True)
    results = {}
    for workers in args.workers:
        result = measure(workers, args.limit, args.warmup, args.window)
        results[str(workers)] = result
        print(f"{workers:>7} | {args.limit:>5} | {result['runs_per_minute']:>8} | "
              f"{result['slice_median_runs_per_minute']!s:>20} | "
              f"{result['runs_in_window']:>12} | {result['not_completed']}", flush=True)
    record("throughput", {"warmup_s": args.warmup, "window_s": args.window,
                          "limit": args.limit, "by_workers": results})


if __name__ == "__main__":
    main()
