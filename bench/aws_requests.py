"""Control-plane requests per flow run and per task run in AWS mode: the cost model's input.

    python bench/aws_requests.py [--runs 5] [--tasks 10] [--ticks 5] [--no-write]

With SLUICE_TRACE_WRU=1 the meters (`_meters.py`) print to stderr a `TRACE` line per DynamoDB
write (key, item size, index units) and read, and per CloudWatch log line (=2 also each written
item): where a run's units go.

Runs the real path with the AWS adapters on moto: an embedded server in this process whose API
is the Lambda `api` handler (`make_handler`) over `build_aws_ports` (DynamoDB, SQS, CloudWatch
Logs, EMF metrics) and whose SQS-compatible endpoint forwards the worker's calls to moto SQS;
a real worker (`sluice worker start`, its own process) and real flow processes reporting through
the SDK. A deployed flow of `--tasks` tasks (each logs one line) is run `--runs` times, one
after another, after one unmeasured warm-up run. Every request is attributed:

* each API request is one API Gateway request and one Lambda invocation: its in-process handler
  time, and the AWS requests it makes (botocore hooks), with DynamoDB read/write request units
  estimated from item sizes (moto's ConsumedCapacity is a constant, so it is not used): 1 WRU
  per started KB of the larger of the item before and after a write, twice that inside a
  transaction, plus each global secondary index entry put, changed or deleted (by its projected
  size); 1 RRU per started 4 KB read strongly consistent (at least one per item, found or not),
  half for eventually consistent reads (every index query); a Query pays for what its key
  condition reads, filtered or not;
* SQS requests (billed per started 64 KB of payload) of the worker: receives (with a message,
  or empty long polls), visibility extensions, deletes; and of the API (the run's message);
* CloudWatch Logs bytes ingested (message + 26 bytes per event): run logs (PutLogEvents), the
  functions' own logs (Powertools lines, EMF documents, Lambda's platform lines when the stack
  keeps them: none at its default `sluice:lambdaSystemLogs=warn`), API access logs (one JSON
  line per request, the stack's format); distinct EMF metrics (name + dimension values).

Heartbeats are measured per call and kept apart: the per-worker beat (one API call per worker
and interval renewing all its runs, and its presence; sampled holding 0, 1 and 20 runs), each
run's SQS ChangeMessageVisibility, the monitor's copy of a session renewal onto a long run, and
the per-run heartbeat and presence beat that older workers send (kept from the previous
docs/requests.json when the worker no longer sends them). So are the scheduler
and monitor ticks (each a Lambda invocation, measured at idle with one pool and one deployment,
and again with one hourly-cron deployment more). moto's latency is not DynamoDB's: the request
counts and units carry over, the handler times are only indicative.

Prints a table, merges the figures into bench/results.json and writes docs/requests.json, which
`bench/cost_model.py` turns into docs/cost.md. (Not named `requests.py`: on `sys.path` that
would shadow the `requests` library, which moto imports.)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import io
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, moto_stack, record  # noqa: E402
from _meters import (  # noqa: E402
    ACCESS_LOG_SAMPLE,
    PLATFORM_BYTES,
    DynamoMeter,
    RequestMeter,
    Usage,
    item_size,
    log_event_bytes,
    remember_log_events,
    rounded,
    usage_of,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS_REQUESTS = ROOT / "docs" / "requests.json"

#: Memory of the three functions (infra/sluice_infra/functions.py): Lambda bills GB-seconds.
LAMBDA_MEMORY_MB = 512

FLOW = textwrap.dedent('''
    import time
    from sluice import flow, task, get_run_logger

    @task
    def step(i: int) -> int:
        get_run_logger().info("step %d done", i)
        return 2 * i

    @flow
    def ten_tasks(tasks: int = 10, seconds: float = 0.0) -> int:
        total = 0
        for i in range(tasks):
            total += step(i)
            if seconds:
                time.sleep(seconds / tasks)
        return total
''')


# ---- the records ---------------------------------------------------------------------------------

ROUTES = [  # (method, path pattern, label)
    ("POST", r"/deployments/[^/]+/[^/]+/runs", "create run (deployment run)"),
    ("POST", r"/deployments/[^/]+/runs", "create run (deployment run)"),
    ("POST", r"/flow-runs", "create run"),
    ("POST", r"/flow-runs/[^/]+/claim", "claim"),
    ("POST", r"/flow-runs/[^/]+/state", "set state"),
    ("POST", r"/flow-runs/[^/]+/heartbeat", "run heartbeat"),
    ("POST", r"/flow-runs/[^/]+/events", "events batch"),
    ("GET", r"/flow-runs/[^/]+/logs", "read logs"),
    ("GET", r"/flow-runs/[^/]+/task-runs", "list task runs"),
    ("GET", r"/flow-runs/[^/]+", "get flow run"),
    ("GET", r"/deployments/[^/]+", "get deployment"),
    ("GET", r"/deployments/[^/]+/[^/]+", "get deployment"),
    ("POST", r"/pools/[^/]+/workers/[^/]+/heartbeat", "worker beat"),
    ("POST", r"/pools/[^/]+/workers", "presence heartbeat"),
    ("GET", r"/pools/[^/]+", "get pool"),
]


#: Workers call the run routes under their pool (`/pools/{pool}/flow-runs/...`): same label.
POOL_SCOPED_PREFIX = re.compile(r"^/pools/[^/]+(?=/(?:flow-runs|deployments)(?:/|$))")


def route_label(method: str, path: str, body: bytes) -> str:
    path = POOL_SCOPED_PREFIX.sub("", path)
    for route_method, pattern, label in ROUTES:
        if method == route_method and re.fullmatch(pattern, path):
            if label == "set state":
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    label += " " + json.loads(body)["state"]["type"]
            if label == "events batch" and b'"state"' in body:
                # The run's last batch, carrying its final state (issue 20): apart, so that the
                # cost model scales plain batches without the state change.
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    if json.loads(body).get("state"):
                        label += " + final state"
            if label == "worker beat":  # its cost grows with the runs it renews
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    label += f" ({len(json.loads(body).get('leases') or [])} held)"
            return label
    return f"{method} {path}"


@dataclass
class Record:
    kind: str  # "api" | "worker-sqs" | "tick"
    label: str
    start: float
    end: float = 0.0
    usage: Usage = field(default_factory=collections.Counter)
    records: dict[str, int] = field(default_factory=dict)  # task runs / logs of an events batch


class Recorder:
    """Every record, and the one the API side's AWS calls are charged to right now (API requests
    and ticks are serialized, so one slot is enough; the worker's SQS calls are metered on
    their own client and make a record each)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.current: Record | None = None
        self.unattributed: Usage = collections.Counter()
        self.metrics: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def charge(self, usage: Usage) -> None:
        with self.lock:
            target = self.current.usage if self.current is not None else self.unattributed
            target.update(usage)

    def worker_call(self, usage: Usage) -> None:
        op = next(k for k in usage if k.startswith("sqs."))
        label = op.removeprefix("sqs.")
        if label == "ReceiveMessage":
            label += " (empty)" if usage.get("sqs_empty_receives") else " (with a message)"
        now = time.time()
        with self.changed:
            self.records.append(Record("worker-sqs", label, now, now, usage))
            self.changed.notify_all()

    @contextlib.contextmanager
    def invocation(self, kind: str, label: str, logger_stream: io.StringIO):
        """One Lambda invocation: its handler time, function logs and EMF metrics."""
        rec = Record(kind, label, time.time())
        stdout = io.StringIO()
        logged_before = len(logger_stream.getvalue())
        with self.lock:
            self.current = rec
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(stdout):
                yield rec
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            with self.lock:
                self.current = None
            rec.end = time.time()
            emf = [line for line in stdout.getvalue().splitlines() if line.strip()]
            logged = logger_stream.getvalue()[logged_before:]
            rec.usage.update({
                "lambda_invocations": 1,
                "lambda_ms": elapsed_ms,
                # Lambda bills each invocation's duration rounded up to the millisecond.
                "lambda_gb_s": math.ceil(elapsed_ms) / 1000 * LAMBDA_MEMORY_MB / 1024,
                "logs_bytes_lambda": PLATFORM_BYTES + sum(
                    log_event_bytes(line) for line in logged.splitlines() if line.strip()),
                "logs_bytes_emf": sum(log_event_bytes(line) for line in emf),
                "emf_documents": len(emf),
            })
            for line in emf:
                self._note_metrics(line)
            with self.changed:
                self.records.append(rec)
                self.changed.notify_all()

    def _note_metrics(self, line: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            doc = json.loads(line)
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for dimensions in directive.get("Dimensions") or [[]]:
                    values = tuple((d, str(doc[d])) for d in dimensions)
                    for metric in directive["Metrics"]:
                        self.metrics.add((directive["Namespace"], metric["Name"], values))

    def wait_for(self, predicate, timeout: float) -> Record:  # noqa: ANN001
        deadline = time.time() + timeout
        with self.changed:
            while True:
                for rec in self.records:
                    if predicate(rec):
                        return rec
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise TimeoutError("the awaited request did not happen")
                self.changed.wait(remaining)


# ---- the embedded server over the AWS adapters ---------------------------------------------------

class WorkerSideQueue:
    """What the embedded SQS endpoint needs of a queue, over the AWS adapter on its own metered
    client: the worker's ReceiveMessage/ChangeMessageVisibility/DeleteMessage become the same
    calls on (moto) SQS, one for one."""

    def __init__(self, queue: Any, url_base: str) -> None:
        self._queue, self._base = queue, url_base

    def queue_urls(self, pool: str) -> Any:
        return types.SimpleNamespace(queue_url=f"{self._base}queue/{pool}",
                                     dlq_url=f"{self._base}queue/{pool}/dead-letter")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def start_stack(recorder: Recorder, data_dir: Path) -> dict[str, Any]:
    """Inside `moto.mock_aws()`: the table, log group and adapters, and a started embedded server
    whose API requests go through the Lambda handler with the recorder around each."""
    import boto3
    from aws_lambda_powertools import Logger

    from sluice_functions.adapters.aws import build_aws_ports
    from sluice_functions.adapters.aws.sqs_queue import SqsRunQueue
    from sluice_functions.embedded.gateway import LambdaContext, from_response, to_event
    from sluice_functions.embedded.server import EmbeddedServer
    from sluice_functions.embedded.sqs_endpoint import SqsEndpoint
    from sluice_functions.handlers.api import make_handler

    settings, clients = moto_stack("sluice-requests")
    meter = DynamoMeter.attached(clients.dynamodb, recorder.charge)
    for client in (clients.sqs, clients.logs):
        RequestMeter(recorder.charge).attach(client)
    clients.logs.meta.events.register("before-parameter-build.cloudwatch-logs.PutLogEvents",
                                      remember_log_events)
    ports = build_aws_ports(settings, clients)
    worker_sqs = boto3.session.Session().client("sqs", region_name="us-east-1")
    RequestMeter(recorder.worker_call).attach(worker_sqs)
    logger_stream = io.StringIO()
    logger = Logger(service=f"sluice-api-{uuid.uuid4().hex[:6]}",
                    logger_handler=logging.StreamHandler(logger_stream))
    handler = make_handler(lambda: ports, logger=logger)

    class MeteredServer(EmbeddedServer):
        def handle_api(self, method: str, path: str, headers: dict[str, str], body: bytes,
                       source_ip: str) -> tuple[int, dict[str, str], bytes]:
            event = to_event(method, path, headers, body, source_ip,
                             caller="arn:aws:iam::000000000000:user/bench")
            label = route_label(method, event["rawPath"], body)
            with self._resolve_lock, recorder.invocation("api", label, logger_stream) as rec:
                response = handler(event, LambdaContext(aws_request_id=uuid.uuid4().hex))
            status, response_headers, data = from_response(response)
            line = {**ACCESS_LOG_SAMPLE, "m": method, "p": event["rawPath"], "s": str(status)}
            rec.usage.update({"api_requests": 1, "logs_bytes_access":
                              log_event_bytes(json.dumps(line, separators=(",", ":")))})
            if label.startswith("events batch"):
                with contextlib.suppress(ValueError, TypeError):
                    batch = json.loads(body)
                    rec.records = {"task_runs": len(batch.get("task_runs") or [])
                                   + len(batch.get("finished_task_runs") or []),
                                   "logs": len(batch.get("logs") or [])}
            return status, response_headers, data

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No timer ticks while runs are measured: the ticks are measured on their own.
    server = MeteredServer(data_dir=data_dir, port=port, tick_seconds=24 * 3600,
                           ports_factory=lambda url_base: ports)
    server.start()
    worker_queue = SqsRunQueue(worker_sqs, settings.effective_queue_prefix,
                               visibility_timeout_seconds=settings.queue_visibility_timeout_seconds)
    server.sqs = SqsEndpoint(WorkerSideQueue(worker_queue, f"{server.sqs_endpoint}/"))
    return {"server": server, "ports": ports, "settings": settings, "shadow": meter.shadow,
            "logger_stream": logger_stream, "clients": clients, "meter": meter}


# ---- the measurement -----------------------------------------------------------------------------

def total(records: list[Record]) -> Usage:
    usage: Usage = collections.Counter()
    for rec in records:
        usage.update(rec.usage)
    return usage


def mean_usage(usages: list[Usage]) -> Usage:
    keys = set().union(*usages) if usages else set()
    return collections.Counter({k: sum(u.get(k, 0) for u in usages) / len(usages) for k in keys})


def handler_ms(records: list[Record]) -> dict[str, float]:
    """Median handler time per call kind (from the pass without unit estimation)."""
    by_label: dict[str, list[float]] = collections.defaultdict(list)
    for rec in records:
        if "lambda_ms" in rec.usage:
            by_label[f"{rec.kind}: {rec.label}"].append(rec.usage["lambda_ms"])
    return {label: median(values) for label, values in by_label.items()}


def gb_seconds(ms: float) -> float:
    """Lambda bills each invocation's duration rounded up to the millisecond."""
    return math.ceil(ms) / 1000 * LAMBDA_MEMORY_MB / 1024


def with_timing(usage: Usage, ms: float, invocations: float = 1) -> Usage:
    """`usage` with its handler time replaced by `invocations` calls of `ms` each."""
    out = collections.Counter(usage)
    if usage.get("lambda_invocations"):
        out["lambda_ms"] = invocations * ms
        out["lambda_gb_s"] = invocations * gb_seconds(ms)
    return out


def per_label(records: list[Record], runs: int, timing: dict[str, float]
              ) -> dict[str, dict[str, Any]]:
    """Per call kind: calls per run, median handler ms, and the usage of one call (mean)."""
    by_label: dict[str, list[Record]] = collections.defaultdict(list)
    for rec in records:
        by_label[f"{rec.kind}: {rec.label}"].append(rec)
    out = {}
    for label, recs in sorted(by_label.items()):
        one = mean_usage([r.usage for r in recs])
        entry: dict[str, Any] = {"calls_per_run": round(len(recs) / runs, 3)}
        if recs[0].kind != "worker-sqs":
            ms = timing.get(label, median([r.usage["lambda_ms"] for r in recs]))
            entry["handler_ms_p50"] = round(ms, 2)
            one = with_timing(one, ms)
        entry["usage_per_call"] = rounded(one)
        if recs[0].records:
            entry["records_per_call"] = {k: round(sum(r.records.get(k, 0) for r in recs)
                                                  / len(recs), 2) for k in recs[0].records}
        out[label] = entry
    return out


def run_once(recorder: Recorder, client: Any, ref: str, parameters: dict[str, Any],
             timeout: float = 120) -> tuple[str, list[Record]]:
    """Trigger one run and wait for the worker to delete its message; its records."""
    start = time.time()
    run = client.run_deployment(ref, _run_request(parameters))
    recorder.wait_for(lambda r: r.kind == "worker-sqs" and r.label == "DeleteMessage"
                      and r.start >= start, timeout)
    end = time.time()
    time.sleep(0.2)  # let the records of the last calls land
    with recorder.lock:
        window = [r for r in recorder.records if start <= r.end <= end + 0.1]
    return run.id, window


def _run_request(parameters: dict[str, Any]) -> Any:
    from sluice.models import DeploymentRunRequest

    return DeploymentRunRequest(parameters=parameters)


#: Records that recur with time, not per run: measured per call and modelled apart.
PERIODIC = {"api: presence heartbeat", "api: run heartbeat", "worker-sqs: ChangeMessageVisibility",
            "worker-sqs: ReceiveMessage (empty)"}


def is_periodic(rec: Record) -> bool:
    label = f"{rec.kind}: {rec.label}"
    return label in PERIODIC or label.startswith("api: worker beat")


#: Runs held by the beats `measure_worker_beats` samples (the result keys `runs_<n>`).
WORKER_BEAT_HOLDINGS = (0, 1, 20)


def measure_worker_beats(stack: dict[str, Any], recorder: Recorder, client: Any, ref: str,
                         beats: int) -> dict[str, Any]:
    """Per-worker heartbeats (`POST /pools/{pool}/workers/{worker}/heartbeat`) through the API
    handler, one worker session per holding of `WORKER_BEAT_HOLDINGS` runs (claimed here with
    that session, never started): a first beat, then `beats` counted ones (the steady state,
    where the session's previous renewal held the runs). Also the monitor's note of a session
    renewal on a long run (`note_session_renewal`: one conditional run write, inside a monitor
    tick already counted with the ticks: its DynamoDB usage only)."""
    from sluice.models import WorkerLeaseHeartbeat, new_id

    out: dict[str, Any] = {}
    running = None
    for held in WORKER_BEAT_HOLDINGS:
        worker, session = f"bench-beat-{held}", new_id()
        leases = []
        for _ in range(held):
            run = client.run_deployment(ref, _run_request({}))
            claim = client.claim_flow_run(run.id, worker, claim_id=new_id(), session=session)
            leases.append({"flow_run_id": run.id, "lease": claim.lease})
            running = run.id
        pool = client.get_flow_run(running).pool if running else "default"
        beat = WorkerLeaseHeartbeat(session=session, leases=leases, host="bench", slots=held)
        client.worker_lease_heartbeat(pool, worker, beat)
        start = time.time()
        for _ in range(beats):
            answer = client.worker_lease_heartbeat(pool, worker, beat)
            if not all(o.renewed for o in answer.runs.values()):
                raise SystemExit(f"a beat holding {held} runs did not renew them all")
        time.sleep(0.1)
        label = f"worker beat ({held} held)"
        with recorder.lock:
            recs = [r for r in recorder.records if r.kind == "api" and r.label == label
                    and r.start >= start]
        ms = median([r.usage["lambda_ms"] for r in recs])
        out[f"runs_{held}"] = rounded(with_timing(mean_usage([r.usage for r in recs]), ms))
    note = Record("tick", "monitor note", time.time())
    store = stack["ports"].store
    run = store.get_flow_run(running)
    with recorder.lock:
        recorder.current = note
    try:
        store.update_flow_run(run.model_copy(
            update={"heartbeat_at": dt.datetime.now(dt.timezone.utc)}))
    finally:
        with recorder.lock:
            recorder.current = None
    return {"beats": out, "monitor_note": rounded(note.usage)}


@dataclass
class Pass:
    """The records of one pass over the runs."""

    windows: list[list[Record]]
    run_ids: list[str]
    long_window: list[Record]
    reads: list[Record]


def drive(recorder: Recorder, client: Any, ref: str, runs: int,
          heartbeat_seconds: float) -> Pass:
    windows, run_ids = [], []
    for _ in range(runs):
        run_id, window = run_once(recorder, client, ref, {})
        windows.append(window)
        run_ids.append(run_id)
        time.sleep(0.3)
    # What a user does once per run, e.g. `sluice flow-run inspect` and `logs`.
    reads_start = time.time()
    client.get_flow_run(run_ids[-1])
    client.list_task_runs(run_ids[-1])
    client.read_logs(run_ids[-1])
    time.sleep(0.1)
    with recorder.lock:
        reads = [r for r in recorder.records if r.kind == "api" and r.start >= reads_start]
    # A longer run samples the heartbeats (the worker sends them every second here).
    _, long_window = run_once(recorder, client, ref, {"seconds": heartbeat_seconds})
    return Pass(windows, run_ids, long_window, reads)


def stored_bytes(shadow: Any, table: str, flow_run_id: str,
                 indexes: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, int]:
    """What one run leaves in the table: its items (+100 bytes of overhead each, as DynamoDB
    bills storage) and their index entries."""
    from sluice_functions.config import TABLE_PARTITION_KEY, TABLE_SORT_KEY

    items = shadow.query(TableName=table, KeyConditionExpression="#pk = :pk",
                         ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
                         ExpressionAttributeValues={":pk": {"S": f"RUN#{flow_run_id}"}},
                         ConsistentRead=True)["Items"]
    table_bytes = sum(item_size(i) + 100 for i in items)
    index_bytes = 0
    for partition, sort, projected in indexes:
        for item in items:
            if partition in item and sort in item:
                names = (TABLE_PARTITION_KEY, TABLE_SORT_KEY, partition, sort, *projected)
                index_bytes += item_size({n: item[n] for n in names if n in item}) + 100
    return {"items": len(items), "table_bytes": table_bytes, "index_bytes": index_bytes}


def measure_ticks(stack: dict[str, Any], recorder: Recorder, ticks: int) -> dict[str, Any]:
    """Scheduler and monitor ticks through their Lambda handlers (as EventBridge calls them):
    `ticks` with request units estimated, then `ticks` timed without."""
    from aws_lambda_powertools import Logger

    from sluice_functions.embedded.gateway import LambdaContext
    from sluice_functions.handlers.ticks import make_tick_handler, monitor_job, scheduler_job

    ports, settings, meter = stack["ports"], stack["settings"], stack["meter"]
    stream = stack["logger_stream"]
    logger = Logger(service=f"sluice-ticks-{uuid.uuid4().hex[:6]}",
                    logger_handler=logging.StreamHandler(stream))
    handlers = {
        "scheduler": make_tick_handler("scheduler", lambda p, s: scheduler_job(p),
                                       lambda: (ports, settings), logger=logger),
        "monitor": make_tick_handler(
            "monitor", lambda p, s: monitor_job(
                p, heartbeat_timeout=dt.timedelta(seconds=s.heartbeat_timeout_seconds)),
            lambda: (ports, settings), logger=logger),
    }
    out = {}
    for name, handler in handlers.items():
        def tick(label: str) -> Record:
            with recorder.invocation("tick", label, stream) as rec:
                handler({"time": "2025-05-12T10:00:00Z"},
                        LambdaContext(aws_request_id=uuid.uuid4().hex))
            return rec

        tick(f"{name} (first, not counted)")
        counted = [tick(name) for _ in range(ticks)]
        meter.units = False
        try:
            timed = [tick(f"{name} (timed)") for _ in range(ticks)]
        finally:
            meter.units = True
        ms = median([r.usage["lambda_ms"] for r in timed])
        out[name] = rounded(with_timing(mean_usage([r.usage for r in counted]), ms), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="measured runs (after a warm-up)")
    parser.add_argument("--tasks", type=int, default=10, help="tasks per flow run")
    parser.add_argument("--ticks", type=int, default=5, help="ticks measured per job")
    parser.add_argument("--heartbeat-seconds", type=float, default=3.5,
                        help="length of the run that samples heartbeats (1 s apart)")
    parser.add_argument("--no-write", action="store_true", help="leave docs/requests.json alone")
    args = parser.parse_args()
    os.environ.setdefault("SLUICE_LOGGING_LEVEL", "WARNING")
    # The API handler makes some clients with boto3's defaults (the on-event rules' EventBridge
    # client): on moto they need a region, as a Lambda function always has one.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import moto

    from sluice.client import SluiceClient
    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow
    from sluice.profiles import Connection
    from sluice_functions.config import GLOBAL_INDEXES

    print(f"control-plane requests in AWS mode (moto) on {machine()}", flush=True)
    recorder = Recorder()
    home = Path(tempfile.mkdtemp(prefix="sluice-requests-"))
    project = home / "project"
    project.mkdir()
    (project / "flows.py").write_text(FLOW)
    indexes = [(i.partition_key, i.sort_key, i.projected_attributes) for i in GLOBAL_INDEXES]
    with moto.mock_aws():
        stack = start_stack(recorder, home / "server")
        server = stack["server"]
        client = SluiceClient(Connection(api_url=server.url))
        deploy_flow(load_flow("flows.py:ten_tasks", project), name="requests",
                    project_dir=project, entrypoint="flows.py:ten_tasks",
                    parameters={"tasks": args.tasks}, client=client)
        ref = "ten-tasks/requests"
        env = {**os.environ, "SLUICE_HOME": str(home), "SLUICE_API_URL": server.url,
               "SLUICE_SQS_ENDPOINT": server.sqs_endpoint, "SLUICE_KIND": "local"}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(key, None)
        # Heartbeats every second (presence too), so that a short run samples them; they are
        # counted per call and scaled to the real 10 s interval by the cost model.
        worker = subprocess.Popen([sys.executable, "-m", "sluice.cli", "worker", "start",
                                   "--name", "bench", "--heartbeat-interval", "1",
                                   "--shutdown-grace", "10"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            recorder.wait_for(lambda r: r.kind == "worker-sqs"
                              and r.label.startswith("ReceiveMessage"), 60)
            run_once(recorder, client, ref, {})  # warm-up: imports, first app, first stream
            counted_from = time.time()
            counted = drive(recorder, client, ref, args.runs, args.heartbeat_seconds)
            timed_from = time.time()
            stack["meter"].units = False
            try:
                drive(recorder, client, ref, args.runs, args.heartbeat_seconds)
            finally:
                stack["meter"].units = True
            timed_to = time.time()
        finally:
            # Everything is recorded; a worker in a 20 s long poll need not be waited for.
            worker.terminate()
            try:
                worker.wait(3)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(30)
        with recorder.lock:
            everything = list(recorder.records)
        storage = stored_bytes(stack["shadow"], stack["settings"].table_name,
                               counted.run_ids[-1], indexes)
        ticks_idle = measure_ticks(stack, recorder, args.ticks)
        # One deployment more, on an hourly cron: what each scheduled deployment adds to ticks.
        deploy_flow(load_flow("flows.py:ten_tasks", project), name="hourly",
                    project_dir=project, entrypoint="flows.py:ten_tasks", cron="0 * * * *",
                    parameters={"tasks": args.tasks}, client=client)
        ticks_scheduled = measure_ticks(stack, recorder, args.ticks)
        worker_beats = measure_worker_beats(stack, recorder, client, ref, args.ticks)
        server.stop()

    timing = handler_ms([r for r in everything if timed_from <= r.start <= timed_to])
    per_run_records = [[r for r in window if not is_periodic(r)] for window in counted.windows]
    calls = per_label([r for w in per_run_records for r in w], args.runs, timing)
    per_run = mean_usage([total(w) for w in per_run_records])
    # Handler time of a run: each call kind's median, times its calls per run.
    per_run["lambda_ms"] = sum(c["calls_per_run"] * c.get("handler_ms_p50", 0)
                               for c in calls.values())
    per_run["lambda_gb_s"] = sum(c["calls_per_run"] * gb_seconds(c.get("handler_ms_p50", 0))
                                 for c in calls.values() if "handler_ms_p50" in c)
    metered = [r for r in everything if counted_from <= r.start < timed_from]

    def one_call(label: str) -> Usage:
        recs = [r for r in metered if f"{r.kind}: {r.label}" == label]
        if not recs:
            raise SystemExit(f"no {label} was sampled: lengthen --heartbeat-seconds")
        usage = mean_usage([r.usage for r in recs])
        return with_timing(usage, timing.get(label, median([r.usage.get("lambda_ms", 0)
                                                            for r in recs])))

    visibility = one_call("worker-sqs: ChangeMessageVisibility")
    # The worker now renews through its per-worker beat: the per-run heartbeat and presence
    # beat (older workers, runs without a worker) are sampled when sent, else kept from the
    # previous docs/requests.json.
    previous = json.loads(DOCS_REQUESTS.read_text()) if DOCS_REQUESTS.exists() else {}

    if "per_run_heartbeat_api" not in previous and "per_run_heartbeat" in previous:
        # Written before the two parts were kept apart: the API call is the rest.
        older = collections.Counter(previous["per_run_heartbeat"])
        older.subtract(visibility)
        previous["per_run_heartbeat_api"] = +older

    def sampled_or_previous(label: str, key: str) -> Usage:
        if any(f"{r.kind}: {r.label}" == label for r in metered) or key not in previous:
            return one_call(label)
        return collections.Counter(previous[key])

    heartbeat = sampled_or_previous("api: run heartbeat", "per_run_heartbeat_api") + visibility
    heartbeat_api = collections.Counter(heartbeat)
    heartbeat_api.subtract(visibility)
    presence = sampled_or_previous("api: presence heartbeat", "per_presence_heartbeat")
    events = calls.get("api: events batch", {})
    reads_usage = collections.Counter()
    for rec in counted.reads:
        reads_usage.update(with_timing(rec.usage, timing.get(f"api: {rec.label}",
                                                             rec.usage["lambda_ms"])))
    empty_receive = usage_of({"sqs.ReceiveMessage": 1, "sqs_requests": 1,
                              "sqs_empty_receives": 1})
    task_records = sum(
        batches.get("records_per_call", {}).get("task_runs", 0) * batches.get("calls_per_run", 0)
        for batches in (events, calls.get("api: events batch + final state", {})))
    result = {
        "generated_by": "bench/aws_requests.py",
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "tasks_per_run": args.tasks,
        "measured_runs": args.runs,
        "notes": [
            "AWS adapters on moto in one process; a real worker process and real flow processes "
            "(the SDK reporter). Handler times are in-process with moto, not AWS latencies.",
            "DynamoDB request units are estimated from item sizes (see bench/aws_requests.py).",
            "Heartbeats were sampled at 1 s intervals; the cost model scales them to 10 s.",
            "per_run_heartbeat and per_presence_heartbeat are the per-run heartbeat and the "
            "presence beat of older workers (kept for runs without a worker); per_worker_beat "
            "is the per-worker heartbeat holding 0, 1 and 20 runs, monitor_note_write the "
            "monitor's copy of a session renewal onto a long run (DynamoDB only).",
        ],
        "per_flow_run": rounded(per_run),
        "calls_per_flow_run": calls,
        "task_run_records_per_run": round(task_records, 2),
        "per_run_heartbeat": rounded(heartbeat),
        "per_run_heartbeat_api": rounded(+heartbeat_api),
        "per_presence_heartbeat": rounded(presence),
        "per_worker_beat": worker_beats["beats"],
        "monitor_note_write": worker_beats["monitor_note"],
        "per_visibility_extension": rounded(visibility),
        "per_empty_receive": rounded(empty_receive),
        "user_reads_per_run": {"calls": sorted(r.label for r in counted.reads),
                               "usage": rounded(reads_usage)},
        "ticks_idle": ticks_idle,
        "ticks_with_one_hourly_deployment": ticks_scheduled,
        "stored_per_run": storage,
        "emf_metrics_seen": sorted(f"{name} {dict(dims)}" for _, name, dims in recorder.metrics),
        "unattributed_setup": rounded(recorder.unattributed),
    }
    print_table(result)
    record("requests", {k: result[k] for k in (
        "tasks_per_run", "measured_runs", "per_flow_run", "per_run_heartbeat",
        "per_presence_heartbeat", "per_worker_beat", "monitor_note_write", "ticks_idle",
        "task_run_records_per_run")})
    if not args.no_write:
        DOCS_REQUESTS.parent.mkdir(exist_ok=True)
        DOCS_REQUESTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote {DOCS_REQUESTS.relative_to(ROOT)}")


SHOWN = [("api_requests", "API Gateway requests"), ("lambda_invocations", "Lambda invocations"),
         ("lambda_ms", "Lambda ms (in-process)"), ("dynamodb_wru", "DynamoDB WRU"),
         ("dynamodb_rru", "DynamoDB RRU"), ("sqs_requests", "SQS requests (billed)"),
         ("logs_bytes_run_logs", "run log bytes"), ("logs_bytes_lambda", "function log bytes"),
         ("logs_bytes_emf", "EMF bytes"), ("logs_bytes_access", "access log bytes")]


def print_table(result: dict[str, Any]) -> None:
    columns = [("per flow run", result["per_flow_run"]),
               ("per heartbeat", result["per_run_heartbeat"]),
               ("per presence", result["per_presence_heartbeat"]),
               ("beat, 1 run", result["per_worker_beat"]["runs_1"]),
               ("beat, 20 runs", result["per_worker_beat"]["runs_20"]),
               ("scheduler tick", result["ticks_idle"]["scheduler"]),
               ("monitor tick", result["ticks_idle"]["monitor"])]
    print(f"\n{result['tasks_per_run']}-task flow runs: {result['measured_runs']} measured")
    print(f"{'':>24} | " + " | ".join(f"{name:>14}" for name, _ in columns))
    for key, name in SHOWN:
        print(f"{name:>24} | " + " | ".join(f"{u.get(key, 0):>14.4g}" for _, u in columns))
    print(f"\ncalls per flow run ({result['task_run_records_per_run']:g} task-run records):")
    for label, entry in result["calls_per_flow_run"].items():
        ops = ", ".join(f"{k} {v:g}" for k, v in entry["usage_per_call"].items()
                        if k.split(".")[0] in ("dynamodb", "sqs", "logs") and "." in k)
        ms = entry.get("handler_ms_p50")
        print(f"  {entry['calls_per_run']:>5g} x {label:<38} "
              f"{'' if ms is None else f'{ms:7.1f} ms  '}{ops}")
    print("\nDynamoDB per call kind (WRU / RRU):")
    for label, entry in result["calls_per_flow_run"].items():
        u = entry["usage_per_call"]
        if u.get("dynamodb_wru") or u.get("dynamodb_rru"):
            print(f"  {label:<42} {u.get('dynamodb_wru', 0):>6g} / {u.get('dynamodb_rru', 0):g}")
    print(f"\nEMF metrics seen: {len(result['emf_metrics_seen'])}")


if __name__ == "__main__":
    main()
