"""Lambda pool: pickup (the handler gets an SQS record -> the flow's first line runs), warm, and
the handler's cold-start import time. The handler is invoked in-process with SQS-shaped events
built from the messages the embedded server put on a lambda pool's queue.

    python bench/lambda_pool.py [--runs 20]

Target (issue 19): pickup under 1 s warm. On AWS add the Lambda runtime's own cold start
(sandbox and Python start, ~0.2-0.5 s for a zip function) to the cold figures printed here.
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

POOL = "bench-lambda"
FLOW = textwrap.dedent('''
    import os, time
    from sluice import flow

    @flow
    def first_line(stamp_file: str) -> None:
        with open(stamp_file, "a") as fh:
            fh.write(f"{os.environ['SLUICE_FLOW_RUN_ID']} {time.time():.6f}\\n")
''')
#: What the handler module imports at cold start, then what its first record adds.
COLD_IMPORT = textwrap.dedent('''
    import time
    t0 = time.perf_counter()
    import sluice_worker.lambda_pool
    t1 = time.perf_counter()
    import sluice.client, sluice.client.reporter, sluice.models
    import sluice_worker.one_run, sluice_worker.supervisor, sluice_worker.sources
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
''')


class Context:
    def __init__(self, seconds: float = 900.0) -> None:
        self._until = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


def cold_imports(samples: int) -> tuple[list[float], list[float]]:
    handler, first_record = [], []
    for _ in range(samples):
        out = subprocess.run([sys.executable, "-c", COLD_IMPORT], capture_output=True, text=True,
                             check=True).stdout.split()
        handler.append(float(out[0]))
        first_record.append(float(out[1]))
    return handler, first_record


def stamp_of(path: Path, run_id: str) -> float | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        found, _, at = line.partition(" ")
        if found == run_id:
            return float(at)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-samples", type=int, default=5)
    args = parser.parse_args()
    handler_import, first_record_import = cold_imports(args.cold_samples)

    from sluice.client import SluiceClient
    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow
    from sluice.models import PoolCreate
    from sluice_worker.lambda_pool import LambdaPool, LambdaPoolSettings
    from sluice_worker.queue import PoolQueue

    project = Path(tempfile.mkdtemp(prefix="sluice-lambda-pool-"))
    (project / "flows.py").write_text(FLOW)
    stamp_file = project / "stamps"
    with embedded_server() as url:
        os.environ["SLUICE_HOME"] = os.environ["SLUICE_BENCH_HOME"]  # the flow processes' home
        client = SluiceClient(connection(url))
        client.create_pool(PoolCreate(name=POOL, type="lambda"))
        flow = load_flow("flows.py:first_line", project)
        deploy_flow(flow, name="pickup", pool=POOL, project_dir=project,
                    entrypoint="flows.py:first_line",
                    parameters={"stamp_file": str(stamp_file)}, client=client)
        # As the function builds it (`LambdaPool.from_environment`): the server's profile,
        # scoped to the pool (its pool token also signs the embedded SQS endpoint's calls).
        from sluice.client import get_client
        from sluice.settings import get_settings
        from sluice_worker.credentials import pool_client as scoped

        get_settings.cache_clear()
        pool_client = scoped(get_client(profile="local", pool=POOL), POOL)
        queue = PoolQueue.connect(pool_client.connection, POOL)
        function = LambdaPool(pool_client, LambdaPoolSettings(
            pool=POOL, code_cache_dir=str(project / "code")))
        pickups = []
        for _ in range(args.runs + 1):  # the first one warms this process up
            run = client.run_deployment("first-line/pickup")
            messages: list[dict] = []
            while not messages:
                messages = queue.receive(1, 1, 300)
            record_ = {"messageId": messages[0]["MessageId"],
                       "receiptHandle": messages[0]["ReceiptHandle"],
                       "body": messages[0]["Body"], "attributes": {},
                       "messageAttributes": {}, "eventSource": "aws:sqs"}
            invoked = time.time()
            answer = function.handle({"Records": [record_]}, Context())
            queue.delete(messages[0]["ReceiptHandle"])
            first_line = stamp_of(stamp_file, run.id)
            if answer["batchItemFailures"] or first_line is None:
                raise RuntimeError(f"run {run.id} did not run: {answer}")
            pickups.append(first_line - invoked)
    warm = pickups[1:]
    figures = {
        "runs": args.runs,
        "handler_cold_import_p50_s": round(median(handler_import), 3),
        "first_record_imports_p50_s": round(median(first_record_import), 3),
        "first_pickup_in_process_s": round(pickups[0], 3),
        "warm_pickup_p50_s": round(median(warm), 3),
        "warm_pickup_p95_s": round(percentile(warm, 95), 3),
    }
    print(f"lambda pool on {machine()}")
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    record("lambda_pool", figures)


if __name__ == "__main__":
    main()
