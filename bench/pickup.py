"""Pickup latency: from `deployment run` to the first line of the flow's body, and to
Completed, over N runs against the embedded server with one worker (default long polling).

    python bench/pickup.py [--runs 50]

Targets: p50 < 0.5 s and p95 < 1 s to the first line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, percentile, record  # noqa: E402
from server_process import connection, embedded_server  # noqa: E402

FLOW = textwrap.dedent('''
    import os, time
    from sluice import flow

    @flow
    def first_line(stamp_file: str) -> None:
        with open(stamp_file, "a") as fh:
            fh.write(f"{os.environ['SLUICE_FLOW_RUN_ID']} {time.time():.6f}\\n")
''')


def stamps(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {run_id: float(at) for run_id, at in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.5,
                        help="seconds between a run's end and the next trigger")
    args = parser.parse_args()
    from sluice.client import SluiceClient
    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow

    project = Path(tempfile.mkdtemp(prefix="sluice-pickup-"))
    (project / "flows.py").write_text(FLOW)
    stamp_file = project / "stamps"
    with embedded_server() as url:
        client = SluiceClient(connection(url))
        flow = load_flow("flows.py:first_line", project)
        deploy_flow(flow, name="pickup", project_dir=project, entrypoint="flows.py:first_line",
                    parameters={"stamp_file": str(stamp_file)}, client=client)
        env = {**os.environ, "SLUICE_HOME": os.environ["SLUICE_BENCH_HOME"]}
        worker = subprocess.Popen([sys.executable, "-m", "sluice.cli", "worker", "start",
                                   "--name", "bench"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)  # the worker is polling
            to_first, to_done = [], []
            for _ in range(args.runs):
                started = time.time()
                run = client.run_deployment("first-line/pickup")
                while run.id not in stamps(stamp_file):
                    time.sleep(0.002)
                to_first.append(stamps(stamp_file)[run.id] - started)
                while not client.get_flow_run(run.id).state.is_terminal:
                    time.sleep(0.01)
                to_done.append(time.time() - started)
                time.sleep(args.gap)
        finally:
            worker.terminate()
            worker.wait(30)
    figures = {
        "runs": args.runs,
        "gap_s": args.gap,
        "first_line_p50_s": round(median(to_first), 3),
        "first_line_p95_s": round(percentile(to_first, 95), 3),
        "completed_p50_s": round(median(to_done), 3),
        "completed_p95_s": round(percentile(to_done, 95), 3),
    }
    print(f"pickup latency on {machine()}")
    for key, value in figures.items():
        print(f"{key:<22} {value}")
    record("pickup", figures)


if __name__ == "__main__":
    main()
