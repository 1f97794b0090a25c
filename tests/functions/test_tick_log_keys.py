"""In Lambda, the package's own log lines (standard-library loggers: a tick's skipped record, a
service warning during a request) go out as Powertools JSON with the run's keys, so that the
"why did run X fail" query finds them beside the API's lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sluice_functions.isolation import record_log_keys

IN_LAMBDA = r"""
import logging, sys
from sluice_functions.handlers import {module} as handler_module
from sluice_functions.handlers.log_keys import keys_appended
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.isolation import isolated

with isolated("monitor", "flow run run-7", metrics=InMemoryMetrics()):
    raise ValueError("a stored value that no longer parses")
with keys_appended(handler_module.logger, {{"flow_run_id": "run-8", "pool": "etl"}}):
    logging.getLogger("sluice_functions.service.queueing").warning("enqueue failed")
logging.getLogger("sluice_functions.service.queueing").warning("after the request")
"""


def _lines_in_lambda(module: str) -> list[dict]:
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "sluice-test", "AWS_REGION": "us-east-1",
           "POWERTOOLS_LOG_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-c", IN_LAMBDA.format(module=module)], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_a_skipped_record_and_a_request_s_warnings_carry_the_run_keys():
    # Given the monitor and the API as Lambda loads them
    for module, service in (("monitor", "sluice-monitor"), ("api", "sluice-api")):
        # When a tick skips a run, and a service module warns during a request about a run
        lines = _lines_in_lambda(module)
        skipped, during, after = lines
        # Then every line is the function's Powertools JSON, with the run's keys while they
        # apply, and none after the request
        assert {line["service"] for line in lines} == {service}
        assert skipped["flow_run_id"] == "run-7" and "ValueError" in skipped["exception"]
        assert (during["flow_run_id"], during["pool"]) == ("run-8", "etl")
        assert "flow_run_id" not in after and "pool" not in after


def test_record_labels_give_their_ids():
    assert record_log_keys("flow run 1234 (of deleted deployment d-9)") == {
        "flow_run_id": "1234"}
    assert record_log_keys("deployment d-9 (etl/nightly)") == {"deployment_id": "d-9"}
    assert record_log_keys("backfills") == {}
