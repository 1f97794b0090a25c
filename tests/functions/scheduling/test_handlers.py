"""The scheduler and monitor entry points: Lambda handlers (EventBridge events) and the embedded
server's jobs."""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import boto3
import moto
import pytest
from aws_lambda_powertools import Logger

from conftest import T0, Clock, Plane
from sluice.models import DeploymentCreate, DeploymentRunRequest, Schedule, StateType
from sluice_functions import service
from sluice_functions.config import (
    ENV_HEARTBEAT_TIMEOUT_SECONDS,
    ENV_RUN_LOG_GROUP,
    ENV_TABLE_NAME,
    ControlPlaneSettings,
    table_key_schema,
)
from sluice_functions.handlers.ticks import (
    embedded_jobs,
    make_tick_handler,
    monitor_job,
    ports_from_environment,
    scheduler_job,
)
from sluice_functions.ports import ControlPlanePorts, FlowRunFilter

EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2024-05-01T12:00:00Z"}


@dataclass
class LambdaContext:
    function_name: str = "sluice-scheduler-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:sluice-test"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def ports_of(plane: Plane) -> ControlPlanePorts:
    return ControlPlanePorts(store=plane.store, queue=plane.queue,
                             logs=None, metrics=plane.metrics)  # type: ignore[arg-type]


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def logger(log_stream) -> Logger:
    return Logger(service=f"sluice-tick-test-{uuid.uuid4().hex}",
                  logger_handler=logging.StreamHandler(log_stream))


def test_the_embedded_jobs_are_the_scheduler_and_the_monitor_with_the_configured_timeout(plane):
    plane.deploy(schedules=[Schedule(cron="*/5 * * * *")])
    run = service.run_deployment("etl/nightly", DeploymentRunRequest(), **plane.ports,
                                 now=plane.clock())
    plane.claim(run.id, attempt=0)
    clock = Clock(T0 + timedelta(seconds=5))  # past the 2 s lease and its 2 s margin
    jobs = dict(embedded_jobs(ports_of(plane), clock=clock,
                              settings=ControlPlaneSettings(heartbeat_timeout_seconds=2)))
    assert list(jobs) == ["scheduler", "monitor"]
    assert jobs["scheduler"]().created == 12
    assert jobs["monitor"]().crashed == 1
    assert plane.store.get_flow_run(run.id).state.type is StateType.CRASHED


def test_the_embedded_server_runs_them_on_its_timer(tmp_path):
    from sluice_functions.embedded.server import EmbeddedServer

    server = EmbeddedServer(data_dir=tmp_path / "server", port=0, tick_seconds=3600).start()
    try:
        assert [name for name, _ in server.jobs] == ["scheduler", "monitor", "retention"]
        request = DeploymentCreate(flow_name="f", name="d", entrypoint="f.py:f",
                                   schedules=[Schedule(cron="* * * * *")])
        service.create_deployment(request, store=server.ports.store, queue=server.ports.queue)
        server.tick()
        assert server.ports.store.count_flow_runs(FlowRunFilter(flow_name="f")) >= 60
    finally:
        server.stop()


class TestLambdaHandlers:
    def handler(self, plane: Plane, logger: Logger, make_job, builds: list[int]):
        def build():
            builds.append(1)
            return ports_of(plane), ControlPlaneSettings(heartbeat_timeout_seconds=5)

        return make_tick_handler("scheduler", make_job, build, logger=logger)

    def test_a_tick_per_event_with_ports_built_once_logs_and_flushed_metrics(
        self, plane, logger, log_stream
    ):
        plane.deploy(schedules=[Schedule(cron="0 * * * *")])
        builds: list[int] = []
        handler = self.handler(plane, logger, lambda ports, settings: scheduler_job(
            ports, clock=plane.clock), builds)
        first = handler(EVENT, LambdaContext())
        second = handler(EVENT, LambdaContext())
        assert (first["created"], second["created"]) == (3, 0) and len(builds) == 1
        assert plane.metrics.flush_count == 2
        lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
        done = [line for line in lines if line["message"] == "scheduler tick done"]
        assert len(done) == 2 and done[0]["tick"]["created"] == 3
        assert done[0]["function_name"] == "sluice-scheduler-test"

    def test_a_failing_tick_is_logged_raised_and_still_flushes(self, plane, logger, log_stream):
        def broken(ports, settings):
            def run():
                raise RuntimeError("store down")
            return run

        handler = self.handler(plane, logger, broken, [])
        with pytest.raises(RuntimeError):
            handler(EVENT, LambdaContext())
        assert plane.metrics.flush_count == 1
        assert "scheduler tick failed" in log_stream.getvalue()

    def test_the_monitor_reads_its_heartbeat_timeout_from_the_settings(self, plane, logger):
        run = service.run_deployment(plane.deploy().id, DeploymentRunRequest(), **plane.ports,
                                     now=plane.clock())
        plane.claim(run.id, attempt=0)
        plane.clock.advance(seconds=8)  # past the 5 s lease and its 2 s margin
        handler = make_tick_handler(
            "monitor",
            lambda ports, settings: monitor_job(
                ports, clock=plane.clock,
                heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_seconds)),
            lambda: (ports_of(plane), ControlPlaneSettings(heartbeat_timeout_seconds=5)),
            logger=logger,
        )
        assert handler(EVENT, LambdaContext())["crashed"] == 1


def test_the_aws_handlers_schedule_and_monitor_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(ENV_TABLE_NAME, "sluice-tick-test")
    monkeypatch.setenv(ENV_RUN_LOG_GROUP, "/sluice-tick-test/flow-runs")
    monkeypatch.setenv(ENV_HEARTBEAT_TIMEOUT_SECONDS, "7")
    with moto.mock_aws():
        boto3.client("dynamodb").create_table(TableName="sluice-tick-test", **table_key_schema())
        boto3.client("logs").create_log_group(logGroupName="/sluice-tick-test/flow-runs")
        ports, settings = ports_from_environment()
        assert settings.heartbeat_timeout_seconds == 7
        request = DeploymentCreate(flow_name="f", name="d", entrypoint="f.py:f",
                                   schedules=[Schedule(cron="*/20 * * * *")])
        service.create_deployment(request, store=ports.store, queue=ports.queue)
        import importlib

        from sluice_functions.handlers import monitor, scheduler

        # Fresh modules: a handler keeps the ports it built on its first event, as in a Lambda
        # container, and another test may have invoked these entries before.
        scheduler, monitor = importlib.reload(scheduler), importlib.reload(monitor)
        scheduled = scheduler.handler(EVENT, LambdaContext())
        monitored = monitor.handler(EVENT, LambdaContext())
        # the next hour of */20 (plus, if the clock just crossed a slot, that slot)
        assert scheduled["created"] in (3, 4) and scheduled["failed"] == 0
        assert monitored == {"crashed": 0, "retried": 0, "late": 0, "repaired": 0, "failed": 0}
        assert ports.store.count_flow_runs(FlowRunFilter(flow_name="f")) == scheduled["created"]
