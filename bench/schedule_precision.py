"""Schedule precision: runs scheduled at known whole seconds on the embedded server with one
worker; prints p50/p95 of (first line of the flow body - scheduled time). Target p95 < 1 s.

    python bench/schedule_precision.py [--runs 30]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, percentile, record  # noqa: E402
from pickup import FLOW, stamps  # noqa: E402
from server_process import connection, embedded_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    from sluice.client import SluiceClient
    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow
    from sluice.models import DeploymentRunRequest

    project = Path(tempfile.mkdtemp(prefix="sluice-precision-"))
    (project / "flows.py").write_text(FLOW)
    stamp_file = project / "stamps"
    with embedded_server() as url:
        client = SluiceClient(connection(url))
        deploy_flow(load_flow("flows.py:first_line", project), name="precise",
                    project_dir=project, entrypoint="flows.py:first_line",
                    parameters={"stamp_file": str(stamp_file)}, client=client)
        env = {**os.environ, "SLUICE_HOME": os.environ["SLUICE_BENCH_HOME"]}
        worker = subprocess.Popen([sys.executable, "-m", "sluice.cli", "worker", "start",
                                   "--name", "precise"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            first = math.ceil(time.time()) + 4
            due = {}
            for i in range(args.runs):
                at = datetime.fromtimestamp(first + i, timezone.utc)
                run = client.run_deployment("first-line/precise",
                                            DeploymentRunRequest(scheduled_at=at))
                due[run.id] = at.timestamp()
            deadline = time.time() + args.runs + 60
            while len(stamps(stamp_file)) < args.runs and time.time() < deadline:
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(30)
    seen = stamps(stamp_file)
    lateness = [seen[run_id] - at for run_id, at in due.items() if run_id in seen]
    figures = {
        "runs": args.runs, "started": len(lateness),
        "lateness_p50_s": round(median(lateness), 3),
        "lateness_p95_s": round(percentile(lateness, 95), 3),
        "earliest_s": round(min(lateness), 3), "latest_s": round(max(lateness), 3),
    }
    print(f"schedule precision on {machine()}")
    for key, value in figures.items():
        print(f"{key:<16} {value}")
    record("schedule_precision", figures)


if __name__ == "__main__":
    main()
