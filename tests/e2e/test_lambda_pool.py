"""A Lambda pool's handler runs real flows in-process against the embedded control plane,
invoked locally with the SQS event batches an event source mapping would send: built from the
messages the control plane put on the pool's queue (read from the embedded SQS endpoint)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sluice.client import get_client
from sluice.settings import get_settings
from sluice_worker.credentials import pool_client
from sluice_worker.lambda_pool import (
    LAMBDA_DEADLINE_MESSAGE,
    MIN_START_SECONDS,
    LambdaPool,
    LambdaPoolSettings,
    handler,
    pool_from_environment,
)
from sluice_worker.queue import PoolQueue

from .harness import created_id, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
POOL = "quick"


@dataclass
class Context:
    """The Lambda context the handler reads: its remaining time."""

    remaining_seconds: float = 900.0
    function_name: str = "sluice-pool-quick"
    aws_request_id: str = "test"

    def __post_init__(self) -> None:
        self._until = time.monotonic() + self.remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


@pytest.fixture
def plane(sluice, monkeypatch, tmp_path):
    """The embedded server with a lambda pool and the project's flows deployed to it; this
    process talks to it as the function would (the server's `local` profile)."""
    monkeypatch.setenv("SLUICE_HOME", str(sluice.home))
    get_settings.cache_clear()
    sluice.cli("pool", "create", POOL, "--type", "lambda")
    for flow, name in (("ledger_flow", "ledger"), ("failing_flow", "fails"),
                       ("slow_flow", "slow")):
        sluice.cli("deploy", f"flows.py:{flow}", "--name", name, "--pool", POOL,
                   "--project-dir", str(PROJECT))
    client = pool_client(get_client(pool=POOL), POOL)
    yield sluice, client, PoolQueue.connect(client.connection, POOL)
    client.close()
    get_settings.cache_clear()


def trigger(sluice, ref: str, *params: str) -> str:
    args = (f"--param={p}" for p in params)
    return created_id(sluice.cli("deployment", "run", ref, *args).stdout)


def sqs_event(queue: PoolQueue, count: int) -> dict:
    """The event an SQS event source mapping sends for the next `count` messages."""
    messages: list[dict] = []

    def gathered() -> bool:
        messages.extend(queue.receive(count - len(messages), 1, 300))
        return len(messages) >= count

    wait_for(gathered, 30, f"{count} message(s) on the pool's queue")
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:sluice-{POOL}",
        "awsRegion": "us-east-1"} for m in messages]}


def settle(queue: PoolQueue, event: dict, answer: dict) -> None:
    """What the event source mapping does with the answer: delete the records that succeeded."""
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for record in event["Records"]:
        if record["messageId"] not in failed:
            queue.delete(record["receiptHandle"])


def a_pool(client, tmp_path: Path, **settings) -> LambdaPool:
    return LambdaPool(client, LambdaPoolSettings(pool=POOL, code_cache_dir=str(tmp_path / "code"),
                                                 heartbeat_interval=0.5, **settings))


def test_the_handler_runs_a_batch_of_real_flows_from_the_pools_queue(plane, tmp_path,
                                                                      monkeypatch):
    sluice, client, queue = plane
    # Given two runs on the lambda pool's queue: one that completes, one that fails
    ledger = tmp_path / "ledger"
    completes = trigger(sluice, "ledger-flow/ledger", f"ledger={ledger}")
    fails = trigger(sluice, "failing-flow/fails")
    event = sqs_event(queue, 2)
    # When the function's entry point gets them as one batch (configured from its environment)
    monkeypatch.setenv("SLUICE_POOL", POOL)
    monkeypatch.setenv("SLUICE_LAMBDA_CODE_CACHE_DIR", str(tmp_path / "code"))
    pool_from_environment.cache_clear()
    try:
        answer = handler(event, Context())
    finally:
        pool_from_environment.cache_clear()
    settle(queue, event, answer)
    # Then both ran to their end in this invocation, and no record comes back
    assert answer == {"batchItemFailures": []}
    assert sluice.run_state(completes)["state"]["name"] == "Completed"
    assert sluice.run_state(fails)["state"]["name"] == "Failed"
    assert "this flow fails on purpose" in sluice.cli("flow-run", "logs", fails).stdout
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == ["start", "end"]
    detail = sluice.cli_json("flow-run", "inspect", completes)
    assert detail["flow_run"]["worker"].startswith("lambda-") and len(detail["task_runs"]) == 3


def test_a_failing_record_is_reported_and_the_rest_of_the_batch_runs(plane, tmp_path):
    sluice, client, queue = plane
    # Given a batch of a good run, a run already claimed by someone else, and a malformed body
    ledger = tmp_path / "ledger"
    good = trigger(sluice, "ledger-flow/ledger", f"ledger={ledger}")
    taken = trigger(sluice, "ledger-flow/ledger", f"ledger={tmp_path / 'other'}")
    event = sqs_event(queue, 2)
    client.claim_flow_run(taken, "some-worker", claim_id="elsewhere")
    event["Records"].append({**event["Records"][0], "messageId": "garbled",
                             "body": "not a run message"})
    # When the handler processes it
    answer = a_pool(client, tmp_path).handle(event, Context())
    # Then only the malformed record is reported failed (it comes back, then dead-letters);
    # the good run completed, and the other worker's run was left alone
    assert answer == {"batchItemFailures": [{"itemIdentifier": "garbled"}]}
    assert sluice.run_state(good)["state"]["name"] == "Completed"
    assert sluice.run_state(taken)["worker"] == "some-worker"
    assert not (tmp_path / "other").exists()


def test_records_reached_too_late_in_the_invocation_come_back(plane, tmp_path):
    sluice, client, queue = plane
    # Given a run, and an invocation with less time left than a run needs to start
    run_id = trigger(sluice, "ledger-flow/ledger", f"ledger={tmp_path / 'ledger'}")
    event = sqs_event(queue, 1)
    context = Context(remaining_seconds=a_pool(client, tmp_path).settings.stop_margin_seconds
                      + MIN_START_SECONDS / 2)
    # When the handler gets it, Then the record fails (it comes back) and the run is untouched
    answer = a_pool(client, tmp_path).handle(event, context)
    assert answer["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert sluice.run_state(run_id)["state"]["type"] == "SCHEDULED"


def test_a_run_at_the_functions_limit_ends_timed_out_naming_the_fix(plane, tmp_path):
    sluice, client, queue = plane
    # Given a long run, and an invocation with a few seconds left after the stop margin
    pid_file = tmp_path / "pid"
    run_id = trigger(sluice, "slow-flow/slow", f"pid_file={pid_file}", "seconds=120")
    event = sqs_event(queue, 1)
    pool = a_pool(client, tmp_path)
    context = Context(remaining_seconds=pool.settings.stop_margin_seconds + MIN_START_SECONDS + 2)
    # When the handler runs it
    answer = pool.handle(event, context)
    # Then the flow was stopped before the function's end and the run is TimedOut, saying to
    # use a fargate or worker pool; the record is done (the run ended)
    assert answer == {"batchItemFailures": []}
    state = sluice.run_state(run_id)["state"]
    assert (state["type"], state["name"], state["message"]) == ("FAILED", "TimedOut",
                                                                LAMBDA_DEADLINE_MESSAGE)
    assert context.get_remaining_time_in_millis() > 0


def test_a_cancelled_run_stops_in_its_invocation(plane, tmp_path):
    sluice, client, queue = plane
    # Given a long run that the handler is running
    pid_file = tmp_path / "pid"
    run_id = trigger(sluice, "slow-flow/slow", f"pid_file={pid_file}", "seconds=120")
    event = sqs_event(queue, 1)
    answers = []
    invocation = threading.Thread(
        target=lambda: answers.append(a_pool(client, tmp_path).handle(event, Context())))
    invocation.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the flow to start")
    # When it is cancelled
    sluice.cli("flow-run", "cancel", run_id)
    invocation.join(60)
    # Then the invocation ends with the run Cancelled, and the record is done
    assert not invocation.is_alive() and answers == [{"batchItemFailures": []}]
    assert sluice.run_state(run_id)["state"]["name"] == "Cancelled"


def test_the_queue_message_is_what_the_handler_reads(plane, tmp_path):
    """The handler reads the control plane's RunMessage bodies as they are sent."""
    sluice, client, queue = plane
    run_id = trigger(sluice, "ledger-flow/ledger", f"ledger={tmp_path / 'ledger'}")
    body = json.loads(sqs_event(queue, 1)["Records"][0]["body"])
    assert (body["flow_run_id"], body["pool"]) == (run_id, POOL)
