"""The Lambda entry of the API (`sluice_functions.handlers.api`): the composition root."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path

import boto3
import moto
import pytest
from aws_lambda_powertools import Logger

from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.config import ENV_RUN_LOG_GROUP, ENV_TABLE_NAME, table_key_schema
from sluice_functions.handlers.api import make_handler, ports_from_environment
from sluice_functions.ports import ControlPlanePorts

from .conftest import close_ports, sqlite_ports
from .events import LambdaContext, http_event, read_answer


def json_logs(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def logger(log_stream) -> Logger:
    # A service name per test: Powertools configures one logging.Logger per service name once.
    return Logger(service=f"sluice-api-test-{uuid.uuid4().hex}",
                  logger_handler=logging.StreamHandler(log_stream))


class PortsFactory:
    """Builds SQLite ports and counts how often it was asked to."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.calls, self.metrics = data_dir, 0, InMemoryMetrics()
        self.built: ControlPlanePorts | None = None

    def __call__(self) -> ControlPlanePorts:
        self.calls += 1
        self.built = sqlite_ports(self.data_dir, [], self.metrics)
        return self.built


def test_ports_are_built_once_per_container_and_metrics_flushed_after_each_call(tmp_path, logger):
    # Given a handler whose ports come from a factory
    factory = PortsFactory(tmp_path)
    handler = make_handler(factory, logger=logger)
    # When it serves three requests, one of them refused
    answers = [read_answer(handler(http_event(method, path, body=body), LambdaContext()))
               for method, path, body in [("POST", "/flow-runs", {"flow_name": "a"}),
                                          ("GET", "/flow-runs", None),
                                          ("GET", "/flow-runs/nope", None)]]
    # Then the ports were built once and the metrics flushed after every invocation
    assert [a.status for a in answers] == [201, 200, 404]
    assert factory.calls == 1
    assert factory.metrics.flush_count == 3
    assert factory.metrics.counter("FlowRunsCreated") == 1
    close_ports(factory.built)


def test_logs_are_json_with_the_lambda_context_and_the_request_id(tmp_path, logger, log_stream):
    factory = PortsFactory(tmp_path)
    handler = make_handler(factory, logger=logger)
    event = http_event("GET", "/flow-runs/nope")
    handler(event, LambdaContext(aws_request_id="lambda-1"))
    refused = [line for line in json_logs(log_stream) if "refused" in line["message"]]
    assert refused[0]["correlation_id"] == event["requestContext"]["requestId"]
    assert refused[0]["function_request_id"] == "lambda-1"
    close_ports(factory.built)


def test_a_handler_that_cannot_build_its_ports_answers_json_and_tries_again(logger, log_stream):
    calls = []

    def broken() -> ControlPlanePorts:
        calls.append(1)
        raise RuntimeError("SLUICE_TABLE_NAME points nowhere")

    handler = make_handler(broken, logger=logger)
    first = read_answer(handler(http_event("GET", "/health"), LambdaContext()))
    handler(http_event("GET", "/health"), LambdaContext())
    assert (first.status, first.error) == (500, "internal_error")
    assert len(calls) == 2
    assert any("could not be built" in line["message"] for line in json_logs(log_stream))


def test_the_aws_composition_root_serves_requests_from_the_environment(monkeypatch, logger):
    # Given the stack's table and log group (moto) and the environment the CDK construct sets
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(ENV_TABLE_NAME, "sluice-handler-test")
    monkeypatch.setenv(ENV_RUN_LOG_GROUP, "/sluice-handler-test/flow-runs")
    with moto.mock_aws():
        boto3.client("dynamodb").create_table(TableName="sluice-handler-test",
                                              **table_key_schema())
        boto3.client("logs").create_log_group(logGroupName="/sluice-handler-test/flow-runs")
        handler = make_handler(ports_from_environment, logger=logger)
        # When runs are created and read through the real Lambda handler
        created = read_answer(handler(http_event("POST", "/flow-runs", body={"flow_name": "a"},
                                                 user_arn="arn:aws:iam::1:user/bob"),
                                      LambdaContext()))
        read = read_answer(handler(http_event("GET", f"/flow-runs/{created.json['id']}"),
                                   LambdaContext()))
        missing = read_answer(handler(http_event("GET", "/flow-runs/nope"), LambdaContext()))
    # Then DynamoDB holds the run and its creator
    assert created.status == 201
    assert read.json["created_by"] == "arn:aws:iam::1:user/bob"
    assert missing.status == 404
