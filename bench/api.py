"""Latency of the API handler in-process (no network) and the AWS requests each call makes.

    python bench/api.py [--n 300] [--aws-n 60] [--backend sqlite aws]

Drives the Lambda handler (`sluice_functions.handlers.api.make_handler`: Powertools routing and
validation, structured logging, metrics flush) with API Gateway v2 events and prints p50/p99
per call for: create (a deployment's run, enqueued), claim, transition (Pending -> Running),
heartbeat, an events batch of 100 task runs, and one of 100 log lines. Backends: the SQLite
adapters (the embedded server) and the AWS adapters on moto DynamoDB/SQS/CloudWatch Logs; for
AWS it also counts the requests per call by service and operation (botocore `before-call`
hooks), the input of the cost model. moto's latency is not AWS's: only the request counts
carry over.
Target on SQLite: p50 < 2 ms per call, < 10 ms for the 100-record batch.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))

from _common import MOTO_REGION, machine, median, moto_stack, percentile, record  # noqa: E402

from aws_lambda_powertools import Logger  # noqa: E402

from sluice_functions.handlers.api import make_handler  # noqa: E402
from sluice_functions.ports import ControlPlanePorts  # noqa: E402

CALLS = ["create", "claim", "transition", "heartbeat", "events_100", "logs_100"]
#: Records per events batch: 100 task runs in one call, 100 log lines in another.
BATCH_RECORDS = 100
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Context:
    function_name = "sluice-api-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sluice-api-bench"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"


def event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"}, "queryStringParameters": None,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
            "authorizer": {"iam": {"userArn": "arn:aws:iam::000000000000:user/bench"}},
        },
        "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
    }


def call(handler: Handler, method: str, path: str, body: Any = None) -> Any:
    response = handler(event(method, path, body), Context())
    text = response.get("body") or ""
    if response.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    if response["statusCode"] >= 300:
        raise RuntimeError(f"{method} {path} -> {response['statusCode']}: {text}")
    return json.loads(text) if text else None


class RequestCounter:
    """Counts AWS requests by "service.Operation" through botocore's before-call event."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[f"{model.service_model.service_name}.{model.name}"] += 1

    def take(self) -> collections.Counter[str]:
        counts, self.counts = self.counts, collections.Counter()
        return counts


def measure(handler: Handler, n: int, counter: RequestCounter | None) -> dict[str, Any]:
    """Time each call kind over `n` fresh runs; per kind: p50/p99 ms and requests per call."""
    deployment = call(handler, "POST", "/deployments", {
        "flow_name": "bench", "name": "api", "entrypoint": "flows.py:bench", "pool": "bench"})
    timings: dict[str, list[float]] = {name: [] for name in CALLS}
    requests: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in CALLS}

    def timed(name: str, method: str, path: str, body: Any = None) -> Any:
        if counter:
            counter.take()
        start = time.perf_counter()
        answer = call(handler, method, path, body)
        timings[name].append((time.perf_counter() - start) * 1000)
        if counter:
            requests[name] += counter.take()
        return answer

    now = "2024-05-01T12:00:00Z"
    for i in range(n):
        run = timed("create", "POST", "/flow-runs", {
            "flow_name": "bench", "deployment_id": deployment["id"], "parameters": {"i": i}})
        claim = timed("claim", "POST", f"/flow-runs/{run['id']}/claim", {"worker": "w1"})
        lease = claim["lease"]
        timed("transition", "POST", f"/flow-runs/{run['id']}/state", {
            "state": {"type": "RUNNING", "timestamp": now}, "transition_id": uuid.uuid4().hex,
            "lease": lease})
        timed("heartbeat", "POST", f"/flow-runs/{run['id']}/heartbeat", {"lease": lease})
        batch = {"task_runs": [{
            "id": f"{run['id'][:8]}-{t}", "flow_run_id": run["id"], "task_name": "step",
            "name": f"step-{t}", "state": {"type": "COMPLETED", "timestamp": now},
            "start_time": now, "end_time": now, "run_count": 1, "version": 1,
        } for t in range(BATCH_RECORDS)], "lease": lease}
        timed("events_100", "POST", f"/flow-runs/{run['id']}/events", batch)
        lines = {"logs": [{
            "id": f"{run['id'][:8]}-log-{t}", "flow_run_id": run["id"], "timestamp": now,
            "level": "INFO", "logger": "bench", "message": f"line {t} " + "x" * 80,
        } for t in range(BATCH_RECORDS)], "lease": lease}
        timed("logs_100", "POST", f"/flow-runs/{run['id']}/events", lines)
    return {
        name: {
            "p50_ms": round(median(values), 3),
            "p99_ms": round(percentile(values, 99), 3),
            **({"requests_per_call": {op: round(count / n, 2)
                                      for op, count in sorted(requests[name].items())}}
               if counter else {}),
        }
        for name, values in timings.items()
    }


def quiet_logger() -> Logger:
    # The handler's structured logs go nowhere: the bench measures the API, not a terminal.
    return Logger(service=f"sluice-api-bench-{uuid.uuid4().hex[:6]}",
                  logger_handler=logging.StreamHandler(io.StringIO()))


@contextlib.contextmanager
def sqlite_handler() -> Iterator[tuple[Handler, None]]:
    from sluice_functions.adapters.memory_metrics import InMemoryMetrics
    from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunQueue, SqliteRunStore

    with tempfile.TemporaryDirectory() as data_dir:
        ports = ControlPlanePorts(
            store=SqliteRunStore(Path(data_dir) / "store.db"),
            queue=SqliteRunQueue(Path(data_dir) / "queue.db"),
            logs=SqliteLogSink(Path(data_dir) / "logs.db"),
            metrics=InMemoryMetrics(),
        )
        yield make_handler(lambda: ports, logger=quiet_logger()), None
        for adapter in (ports.store, ports.queue, ports.logs):
            adapter.close()


@contextlib.contextmanager
def aws_handler() -> Iterator[tuple[Handler, RequestCounter]]:
    import moto

    from sluice_functions.adapters.aws import build_aws_ports

    # Lambda sets the region; the handler's own clients (on-event rules) read it from here.
    region = {"AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", MOTO_REGION)}
    with moto.mock_aws(), mock.patch.dict(os.environ, region):
        settings, clients = moto_stack("sluice-bench")
        counter = RequestCounter()
        for client in (clients.dynamodb, clients.sqs, clients.logs):
            counter.attach(client)
        ports = build_aws_ports(settings, clients)
        yield make_handler(lambda: ports, logger=quiet_logger()), counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="runs driven on SQLite")
    parser.add_argument("--aws-n", type=int, default=60, help="runs driven on moto")
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "aws"],
                        default=["sqlite", "aws"])
    args = parser.parse_args()
    print(f"api handler in-process on {machine()}")
    figures: dict[str, Any] = {}
    backends = {"sqlite": (sqlite_handler, args.n), "aws": (aws_handler, args.aws_n)}
    for backend in args.backend:
        factory, n = backends[backend]
        with factory() as (handler, counter), contextlib.redirect_stdout(io.StringIO()):
            # stdout is swallowed while measuring: the EMF metrics adapter prints on flush.
            figures[backend] = {"runs": n, "calls": measure(handler, n, counter)}
        print_table(backend, figures[backend])
    record("api", figures)


def print_table(backend: str, result: dict[str, Any]) -> None:
    print(f"\n{backend} ({result['runs']} runs)")
    print(f"{'call':>12} | {'p50 ms':>8} | {'p99 ms':>8} | requests per call")
    for name, stats in result["calls"].items():
        per_call = stats.get("requests_per_call")
        ops = ", ".join(f"{op} {count:g}" for op, count in per_call.items()) if per_call else "-"
        print(f"{name:>12} | {stats['p50_ms']:>8.3f} | {stats['p99_ms']:>8.3f} | {ops}", flush=True)


if __name__ == "__main__":
    main()
