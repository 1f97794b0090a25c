"""Every line the API logs while serving a request carries the run, deployment and pool the
request names (`sluice_functions.handlers.log_keys`), and no key outlives its request."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from aws_lambda_powertools import Logger

from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.handlers.api import make_handler
from sluice_functions.handlers.log_keys import MAX_PARSED_BODY_BYTES, request_log_keys

from .conftest import close_ports, sqlite_ports
from .events import LambdaContext, http_event, read_answer

RUN_ID = "0b5f6c2e-7d1a-4c39-9a57-3f0d2b8e41aa"


def json_logs(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def served(tmp_path):
    """A handler on SQLite ports logging into a buffer; yields (handler, log buffer)."""
    stream = io.StringIO()
    # A service name per test: Powertools configures one logging.Logger per service name once.
    logger = Logger(service=f"sluice-keys-test-{uuid.uuid4().hex}",
                    logger_handler=logging.StreamHandler(stream))
    built = []

    def ports():
        built.append(sqlite_ports(tmp_path, [], InMemoryMetrics()))
        return built[-1]

    yield make_handler(ports, logger=logger), stream
    for ports_ in built:
        close_ports(ports_)


def test_a_line_logged_for_a_run_request_carries_the_run_id(served):
    handler, stream = served
    # Given a request about a run that does not exist (the API logs the refusal)
    # When the handler serves it
    answer = read_answer(handler(http_event("GET", f"/flow-runs/{RUN_ID}"), LambdaContext()))
    # Then the refusal line names the run in its own key
    assert answer.status == 404
    refused = [line for line in json_logs(stream) if "refused" in line["message"]]
    assert refused and refused[0]["flow_run_id"] == RUN_ID


def test_the_keys_are_cleared_after_the_request(served):
    handler, stream = served
    # Given a request about a run, then one about nothing in particular that is refused too
    handler(http_event("GET", f"/flow-runs/{RUN_ID}"), LambdaContext())
    handler(http_event("GET", "/deployments/no-such-flow/no-such-name"), LambdaContext())
    # Then the second request's lines carry no run id
    lines = [line for line in json_logs(stream) if "refused" in line["message"]]
    assert len(lines) == 2
    assert lines[0]["flow_run_id"] == RUN_ID
    assert "flow_run_id" not in lines[1]


def test_keys_come_from_the_path_and_a_small_json_body():
    # Given a pool route naming a run, and a body naming a deployment
    event = http_event("POST", f"/pools/etl/flow-runs/{RUN_ID}/claim",
                       body={"deployment_id": "d-1", "pool": "ignored: the path wins"})
    # Then all three keys are found, the path's pool first
    assert request_log_keys(event) == {"flow_run_id": RUN_ID, "pool": "etl",
                                       "deployment_id": "d-1"}


def test_route_words_and_large_bodies_give_no_keys():
    assert request_log_keys(http_event("POST", "/flow-runs/filter", body={})) == {}
    big = {"flow_run_id": "x", "padding": "p" * MAX_PARSED_BODY_BYTES}
    assert request_log_keys(http_event("POST", "/flow-runs", body=big)) == {}
    assert request_log_keys({"source": "aws.events"}) == {}
