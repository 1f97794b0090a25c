"""`make bench`: run every benchmark in turn; each prints its table and merges its figures
into bench/results.json. The request count (aws_requests.py) also rewrites docs/requests.json
and the cost model (cost_model.py) docs/cost.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    ["import_time.py"],
    # The API function's cold start (import + first request on moto), with and without .pyc.
    ["cold_start.py"],
    ["task_overhead.py"],
    ["task_overhead.py", "--mode", "server", "--repeats", "3"],
    ["task_overhead.py", "--own-core", "--n", "10000", "--repeats", "3"],
    ["task_overhead.py", "--mode", "server", "--own-core", "--n", "10000", "--repeats", "3"],
    ["pickup.py"],
    # An idle worker: memory of the worker and its standby process (RSS, PSS), stop time.
    ["idle_memory.py"],
    ["schedule_precision.py"],
    ["api.py"],
    ["throughput.py"],
    # 10,000 small and 200 one-second tasks: a local Dask cluster vs the thread pool.
    ["dask_fanout.py"],
    # 100,000 runs in the embedded store: dashboard and runs list, navigation -> data-ready in
    # headless Chromium (needs `make console` and Debian's chromium).
    ["console_render.py"],
    # Rewrites docs/requests.json, which cost_model.py turns into docs/cost.md.
    ["aws_requests.py"],
    ["cost_model.py"],
    # 1,000 and 10,000 concurrent runs on a simulated clock (AWS on moto: a 100-run sample,
    # scaled; the embedded server: 1,000 runs); writes the "At scale" section of docs/cost.md,
    # so it runs after cost_model.py.
    ["scale.py", "--quick"],
    # Lambda pools: pickup (record -> flow running) warm, and the handler's cold import.
    ["lambda_pool.py"],
    # Compute per run by pool kind (list prices); writes its section of cost.md and pools.md.
    ["pool_costs.py", "--write"],
]


def main() -> int:
    failed = 0
    for script, *args in BENCHMARKS:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / script), *args]).returncode != 0
    print(f"\nfigures merged into {HERE / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
