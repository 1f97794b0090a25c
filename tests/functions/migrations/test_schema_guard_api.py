"""The API refuses to serve data newer than it understands, with a 503 naming the fix, and
serves older data as usual (the migration window)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sluice.exceptions import SchemaTooNew

from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunQueue, SqliteRunStore
from sluice_functions.api import build_app
from sluice_functions.migrations import SchemaStatus
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.ports import ControlPlanePorts



def http_event(method: str, path: str) -> dict:
    """The API Gateway v2 event of a local request without a body."""
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {}, "body": None, "isBase64Encoded": False,
            "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "tests"},
                               "requestId": "r-1", "routeKey": "$default", "stage": "$default"}}


def app_on(tmp_path, status: SchemaStatus):
    reads: list[int] = []

    def read_status() -> SchemaStatus:
        reads.append(1)
        return status

    ports = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://127.0.0.1:1/sqs"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        schema=SchemaGuard(read_status, understood=2))
    return build_app(ports), reads


def call(app, method: str, path: str) -> tuple[int, dict]:
    answer = app.resolve(http_event(method, path), None)
    return answer["statusCode"], json.loads(answer["body"])


def test_newer_data_is_refused_with_the_fix_and_health_still_answers(tmp_path):
    app, _ = app_on(tmp_path, SchemaStatus(version=3, oldest_code=3))

    status, body = call(app, "GET", "/flow-runs")

    assert status == 503
    assert body["error"] == "schema_too_new"
    assert "the table is at schema 3, this control plane understands up to 2: upgrade sluice" \
        in body["message"]
    assert call(app, "GET", "/health")[0] == 200


def test_older_data_is_served_and_the_status_is_read_once_per_interval(tmp_path):
    app, reads = app_on(tmp_path, SchemaStatus(version=1))

    for _ in range(3):
        assert call(app, "GET", "/flow-runs")[0] == 200

    assert len(reads) == 1


def test_the_ticks_refuse_newer_data_too(tmp_path):
    from sluice_functions.handlers.ticks import monitor_job, scheduler_job

    ports = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://127.0.0.1:1/sqs"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        schema=SchemaGuard(lambda: SchemaStatus(version=3, oldest_code=3), understood=2))
    for job in (scheduler_job(ports), monitor_job(ports, heartbeat_timeout=timedelta(seconds=60))):
        with pytest.raises(SchemaTooNew):
            job()
