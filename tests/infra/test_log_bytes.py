"""Issue 20, CloudWatch Logs bytes per run: the functions' Lambda system log level
(`sluice:lambdaSystemLogs`, WARN by default) and the API access log's short-keyed format, with
every field the saved queries and the 429 metric filter read."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App

from sluice_infra.app import ContextError, build_stack
from sluice_infra.http_api import ACCESS_LOG_FIELDS
from sluice_infra.lambda_logging import DEFAULT_SYSTEM_LOGS, system_log_level
from sluice_infra.log_queries import (
    ERRORS_BY_ROUTE,
    SLOWEST_RUNS_TODAY,
    THROTTLED_REQUESTS,
    WHY_DID_RUN_FAIL,
)

from .conftest import DEFAULT_STACK, FULL_STACK

#: What an operator needs to trace one request (issue 20 keeps these while cutting bytes).
TRACE_VARIABLES = {"$context.requestId", "$context.requestTimeEpoch", "$context.httpMethod",
                   "$context.path", "$context.status", "$context.responseLatency",
                   "$context.integrationErrorMessage", "$context.identity.userArn"}
#: Typical values of one worker request, to size a line as API Gateway writes it.
TYPICAL = {"$context.requestId": "Yx3LbhPjIAMEbkw=", "$context.requestTimeEpoch": "1747044000000",
           "$context.httpMethod": "POST",
           "$context.path": "/flow-runs/8f5c1a2e-1234-4abc-9def-0123456789ab/claim",
           "$context.status": "200", "$context.responseLatency": "25",
           "$context.integrationErrorMessage": "-",
           "$context.identity.userArn":
               "arn:aws:sts::123456789012:assumed-role/sluice-worker/i-0123456789abcdef0"}
#: The access log line of that request before issue 20's short keys (with CloudWatch's 26
#: bytes per event): 492 bytes.
BYTES_BEFORE = 492


def _logging_configs(synthesized, stack: str) -> list[dict]:
    return [f["Properties"]["LoggingConfig"]
            for f in synthesized.resources("AWS::Lambda::Function", stack).values()]


def test_by_default_lambda_writes_no_start_and_report_line_per_invocation(synthesized):
    # Given the app with no context
    configs = _logging_configs(synthesized, DEFAULT_STACK)
    # Then every function (api, scheduler, monitor, automations) filters Lambda's own lines
    # at WARN, and keeps its application lines at INFO
    assert DEFAULT_SYSTEM_LOGS == "warn"
    assert len(configs) == 4
    assert {c["SystemLogLevel"] for c in configs} == {"WARN"}
    assert {c["ApplicationLogLevel"] for c in configs} == {"INFO"}
    assert {c["LogFormat"] for c in configs} == {"JSON"}


def test_lambda_system_logs_info_brings_the_report_lines_back():
    # Given the context key set to info (any case)
    app = App(context={"sluice:lambdaSystemLogs": "INFO", "sluice:stackName": "SluiceInfo"})
    # When the stack is synthesized
    build_stack(app)
    template = app.synth().get_stack_by_name("SluiceInfo").template
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    # Then every function logs Lambda's INFO lines again
    assert len(functions) == 4
    assert {f["Properties"]["LoggingConfig"]["SystemLogLevel"] for f in functions} == {"INFO"}


def test_a_bad_lambda_system_logs_context_fails_naming_the_key_and_the_choices():
    with pytest.raises(ContextError) as raised:
        build_stack(App(context={"sluice:lambdaSystemLogs": "debug"}))
    assert "sluice:lambdaSystemLogs" in str(raised.value) and "info, warn" in str(raised.value)
    with pytest.raises(ValueError, match="info, warn"):
        system_log_level("error")


@pytest.mark.parametrize("stack", [DEFAULT_STACK, FULL_STACK])
def test_the_access_log_keeps_what_traces_a_request_in_a_compact_line(synthesized, stack):
    # Given the stage's access log format
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage", stack).values()
    template = stage["Properties"]["AccessLogSettings"]["Format"]
    # Then it carries what traces a request, with short keys and no spaces between fields
    assert set(ACCESS_LOG_FIELDS.values()) == TRACE_VARIABLES
    assert json.loads(template) == ACCESS_LOG_FIELDS
    assert " " not in template and all(len(key) <= 3 for key in ACCESS_LOG_FIELDS)
    # And a typical line, as API Gateway writes it, is about half its size before
    line = template
    for variable in sorted(TYPICAL, key=len, reverse=True):
        line = line.replace(variable, TYPICAL[variable])
    assert json.loads(line)["p"] == TYPICAL["$context.path"]
    size = len(line.encode()) + 26
    print(f"\naccess log line: {size} bytes (was {BYTES_BEFORE})")
    assert size <= BYTES_BEFORE * 0.55


def test_the_queries_and_the_429_filter_read_keys_the_access_log_has(synthesized):
    # Given the saved queries over the access log and the API 429 metric filter
    keys = set(ACCESS_LOG_FIELDS)
    (log_filter,) = synthesized.resources("AWS::Logs::MetricFilter").values()
    # Then the filter reads the status key
    (filtered,) = re.findall(r"\$\.(\w+)", log_filter["Properties"]["FilterPattern"])
    assert ACCESS_LOG_FIELDS[filtered] == "$context.status"
    # And every access-log key a query filters, parses or groups by is one the log writes
    for query in (SLOWEST_RUNS_TODAY, ERRORS_BY_ROUTE, THROTTLED_REQUESTS):
        read = set(re.findall(r"(?:parse|filter) (\w+)\b(?!\()", query))
        (grouped,) = re.findall(r"stats .* by (.*)", query)
        derived = {"run", "family", "action", "bin(1m) as minute"}  # parsed or computed
        read |= {name.strip() for name in grouped.split(",")} - derived
        assert read <= keys, query
    # (why did run X fail reads every log group: its access-log keys are named here)
    assert 'p like "RUN_ID"' in WHY_DID_RUN_FAIL and "m, p, s, err" in WHY_DID_RUN_FAIL
