"""The control planes bench/scale.py drives, both reading "now" from the simulation's clock:

* `aws_target`: the API Lambda handler (`handlers.api.make_handler`, the function's real entry:
  Powertools routing, logging, EMF flush) over the AWS adapters on moto, called in-process with
  API Gateway v2 events; the monitor and scheduler through their tick handlers
  (`handlers.ticks.make_tick_handler`). DynamoDB request units are estimated from item sizes by
  bench/aws_requests.py's `DynamoMeter` (moto answers `ReturnConsumedCapacity` with a constant,
  so its ConsumedCapacity is not used); the meter's own reads are timed and taken out of each
  call's handler time.
* `embedded_target`: the embedded server (SQLite, its HTTP gateway) over real HTTP on loopback,
  its app built with the simulated clock and its timer off; the simulation calls its monitor
  and scheduler jobs.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import io
import json
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from _meters import (
    ACCESS_LOG_SAMPLE,
    PLATFORM_BYTES,
    DynamoMeter,
    RequestMeter,
    log_event_bytes,
    remember_log_events,
)
from _common import moto_stack
from scale_sim import POOL, Answer, SimClock

CALLER = "arn:aws:iam::000000000000:user/scale-bench"
#: The route of per-worker heartbeats (issue 18.1); probed, since it may not exist yet.
WORKER_HEARTBEAT_PROBE = f"/pools/{POOL}/workers/scale-probe/heartbeat"


class TimedDynamoMeter(DynamoMeter):
    """`DynamoMeter` that adds up the time of its own shadow reads, so that the handler time of
    a call can be given without them."""

    overhead = 0.0

    def _before(self, **kwargs: Any) -> None:  # type: ignore[override]
        started = time.perf_counter()
        try:
            super()._before(**kwargs)
        finally:
            self.overhead += time.perf_counter() - started

    def _after(self, **kwargs: Any) -> None:  # type: ignore[override]
        started = time.perf_counter()
        try:
            super()._after(**kwargs)
        finally:
            self.overhead += time.perf_counter() - started


def _quiet_logger(stream: io.StringIO, service: str) -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=f"{service}-{uuid.uuid4().hex[:6]}",
                  logger_handler=logging.StreamHandler(stream))


def _log_bytes(text: str) -> int:
    return sum(log_event_bytes(line) for line in text.splitlines() if line.strip())


def _probe_worker_heartbeat(target: Any) -> bool:
    import sluice.models

    if not hasattr(sluice.models, "WorkerLeaseHeartbeat"):
        return False
    answer = target.call("POST", WORKER_HEARTBEAT_PROBE, {
        "session": uuid.uuid4().hex, "host": "probe", "version": "scale", "slots": 0,
        "leases": []})
    return answer.status < 300


class AwsTarget:
    """The Lambda handlers on moto (see the module docstring)."""

    name = "Lambda handler + DynamoDB (moto)"

    def __init__(self, clock: SimClock, memory_mb: int) -> None:
        from sluice_functions.adapters.aws import build_aws_ports
        from sluice_functions.handlers.api import make_handler
        from sluice_functions.handlers.ticks import make_tick_handler, monitor_job, scheduler_job
        from sluice_functions.service import ensure_pool

        self.clock, self.memory_mb = clock, memory_mb
        settings, clients = moto_stack("sluice-scale")
        self.pending: collections.Counter = collections.Counter()
        self.meter = TimedDynamoMeter.attached(clients.dynamodb, self.pending.update)
        # Units are estimated (extra reads) from the end of the setup on: see `setup_done`.
        self.meter.units = False
        for client in (clients.sqs, clients.logs):
            RequestMeter(self.pending.update).attach(client)
        clients.logs.meta.events.register(
            "before-parameter-build.cloudwatch-logs.PutLogEvents", remember_log_events)
        ports = build_aws_ports(settings, clients)
        ensure_pool(POOL, store=ports.store, queue=ports.queue)
        self.log_stream = io.StringIO()
        logger = _quiet_logger(self.log_stream, "sluice-scale")
        self.handler = make_handler(lambda: ports, logger=logger, clock=clock)
        timeout = dt.timedelta(seconds=settings.heartbeat_timeout_seconds)
        self.ticks = {
            "monitor": make_tick_handler(
                "monitor", lambda p, s: monitor_job(p, heartbeat_timeout=timeout, clock=clock),
                lambda: (ports, settings), logger=logger),
            "scheduler": make_tick_handler(
                "scheduler", lambda p, s: scheduler_job(p, clock=clock),
                lambda: (ports, settings), logger=logger),
        }

    def _invoke(self, fn: Any) -> tuple[Any, float, collections.Counter]:
        """One Lambda invocation: its result, handler ms (without the meter's reads) and usage:
        AWS requests and units, GB-s, and the log bytes it makes (its own lines, EMF documents,
        Lambda's two platform lines)."""
        self.pending.clear()
        self.meter.overhead = 0.0
        logged = len(self.log_stream.getvalue())
        stdout = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(stdout):
            result = fn()
        ms = max(0.0, (time.perf_counter() - started - self.meter.overhead) * 1000)
        usage = collections.Counter(self.pending)
        usage.update({
            "lambda_invocations": 1, "lambda_ms": ms,
            # Lambda bills each invocation's duration rounded up to the millisecond.
            "lambda_gb_s": math.ceil(ms) / 1000 * self.memory_mb / 1024,
            "logs_bytes_lambda": PLATFORM_BYTES
            + _log_bytes(self.log_stream.getvalue()[logged:]),
            "logs_bytes_emf": _log_bytes(stdout.getvalue()),
        })
        return result, ms, usage

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        from sluice_functions.embedded.gateway import LambdaContext, from_response, to_event

        raw = b"" if body is None else json.dumps(body).encode()
        event = to_event(method, path, {"content-type": "application/json"}, raw, "127.0.0.1",
                         caller=CALLER)
        response, ms, usage = self._invoke(
            lambda: self.handler(event, LambdaContext(aws_request_id=uuid.uuid4().hex)))
        status, _, data = from_response(response)
        line = {**ACCESS_LOG_SAMPLE, "method": method, "path": path, "status": str(status),
                "responseLength": str(len(data))}
        usage.update({"api_requests": 1, "logs_bytes_access":
                      log_event_bytes(json.dumps(line, separators=(",", ":")))})
        return Answer(status, json.loads(data) if data else None, ms, usage)

    def tick(self, job: str) -> tuple[dict[str, int], Answer]:
        from sluice_functions.embedded.gateway import LambdaContext

        result, ms, usage = self._invoke(lambda: self.ticks[job](
            {"time": self.clock().isoformat()}, LambdaContext(aws_request_id=uuid.uuid4().hex)))
        counts = result if isinstance(result, dict) else {}
        return counts, Answer(200, counts, ms, usage)

    def has_worker_heartbeat(self) -> bool:
        return _probe_worker_heartbeat(self)

    def setup_done(self) -> None:
        """The simulation's steady state is set up: estimate request units from now on."""
        self.meter.units = True


@contextlib.contextmanager
def aws_target(clock: SimClock, *, memory_mb: int = 512) -> Iterator[AwsTarget]:
    """The Lambda handlers over the AWS adapters, inside `moto.mock_aws()`."""
    import moto

    # The handler builds a client for deployments' on-event rules from the environment's
    # region; scoped here, so nothing leaks to the caller's environment.
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}), moto.mock_aws():
        yield AwsTarget(clock, memory_mb)


class EmbeddedTarget:
    """The embedded server over HTTP (see the module docstring)."""

    name = "embedded server (SQLite, HTTP)"

    def __init__(self, clock: SimClock, server: Any) -> None:
        import datetime as _dt

        import requests

        from sluice_functions.config import ControlPlaneSettings
        from sluice_functions.handlers.ticks import monitor_job, scheduler_job

        self.clock, self.server = clock, server
        self.session = requests.Session()
        timeout = _dt.timedelta(seconds=ControlPlaneSettings().heartbeat_timeout_seconds)
        self.jobs = {"monitor": monitor_job(server.ports, heartbeat_timeout=timeout, clock=clock),
                     "scheduler": scheduler_job(server.ports, clock=clock)}

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        started = time.perf_counter()
        response = self.session.request(method, self.server.url + path, json=body, timeout=60)
        ms = (time.perf_counter() - started) * 1000
        parsed = response.json() if response.content else None
        return Answer(response.status_code, parsed, ms, collections.Counter({"api_requests": 1}))

    def tick(self, job: str) -> tuple[dict[str, int], Answer]:
        started = time.perf_counter()
        result = self.jobs[job]()
        ms = (time.perf_counter() - started) * 1000
        counts = result.as_dict() if hasattr(result, "as_dict") else {}
        return counts, Answer(200, counts, ms)

    def has_worker_heartbeat(self) -> bool:
        return _probe_worker_heartbeat(self)


@contextlib.contextmanager
def embedded_target(clock: SimClock) -> Iterator[EmbeddedTarget]:
    """A started embedded server on a free loopback port, SQLite in a temporary directory; its
    app reads the simulated clock and its own timer never fires (the simulation ticks)."""
    from sluice_functions.api import build_app
    from sluice_functions.embedded.server import EmbeddedServer

    with tempfile.TemporaryDirectory() as data_dir:
        server = EmbeddedServer(data_dir=Path(data_dir), port=0, tick_seconds=24 * 3600)
        server.start()
        try:
            # The same ports and routes as `start()` built, with the simulation's clock.
            server.app = build_app(server.ports, clock=clock)
            target = EmbeddedTarget(clock, server)
            yield target
            target.session.close()
        finally:
            server.stop()
