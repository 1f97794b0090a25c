"""The function of a Lambda pool: an SQS event source mapping hands it batches of its pool's
queue, and it runs each record's flow run to its end (`one_run.run_one`), in the function's own
sandbox: no worker host, no polling.

Per record: claim with the message id as the claim id (a redelivered copy gets the same lease),
fetch the code into /tmp, run the flow in a subprocess, heartbeat, honour cancel, report. The
function stops the flow before Lambda stops the invocation: the deadline is the invocation's
remaining time less `STOP_MARGIN_SECONDS`, and a run stopped there ends TimedOut with
`LAMBDA_DEADLINE_MESSAGE` (deployments that say they may run longer than
`LAMBDA_MAX_RUN_SECONDS` are refused when they are deployed).

Batches are reported the Powertools way (`batchItemFailures`): a record whose run is done, not
ours (already claimed, ended, unknown) or requeued for a concurrency slot succeeds and SQS
deletes it; a record whose claim was deferred, that is malformed, or that came too late in the
invocation to start, fails and comes back (and dead-letters after `maxReceiveCount`). Records run
one after the other, so a batch shares one invocation's 15 minutes: map the queue with batch
size 1 unless the flows are short.

Cold start: this module imports only the standard library and Powertools' batch utilities; the
client, the supervisor and the models are imported when the first record runs.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from .sqs_records import RETRY_SECONDS, show_again_in

log = logging.getLogger("sluice.worker")

#: Lambda stops an invocation at its timeout (at most 15 minutes). The flow is stopped this long
#: before: SIGTERM, `STOP_GRACE_SECONDS`, SIGKILL, then its TimedOut report and log flush.
STOP_MARGIN_SECONDS = 20.0
#: How long a flow stopped at the deadline gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5.0
#: A record reached with less time than this left is not started: it fails and comes back to a
#: fresh invocation (a claim now would only end TimedOut).
MIN_START_SECONDS = 10.0
#: The state message of a run stopped at the function's limit, with the fix.
LAMBDA_DEADLINE_MESSAGE = ("stopped at the Lambda pool's 15-minute limit; run it on a fargate or "
                           "worker pool")
#: Where the code cache lives in Lambda (the only writable directory).
DEFAULT_CODE_CACHE_DIR = "/tmp/sluice/code"


class RecordNotDone(Exception):
    """The record's run was not taken now: SQS brings the message back (`batchItemFailures`)."""


@dataclass(frozen=True)
class LambdaPoolSettings:
    """What the function is told by its environment (set by the `LambdaPool` construct)."""

    #: `SLUICE_POOL`: the pool whose queue drives this function.
    pool: str
    #: `SLUICE_LAMBDA_CODE_CACHE_DIR`: the code cache (bundles, checkouts, venvs).
    code_cache_dir: str = DEFAULT_CODE_CACHE_DIR
    #: `SLUICE_LAMBDA_HEARTBEAT_INTERVAL`: most seconds between a run's heartbeats.
    heartbeat_interval: float = 10.0
    stop_margin_seconds: float = STOP_MARGIN_SECONDS

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> LambdaPoolSettings:
        env = os.environ if environ is None else environ
        pool = env.get("SLUICE_POOL") or env.get("SLUICE_WORKER_POOL")
        if not pool:
            from sluice.exceptions import ConfigurationError

            raise ConfigurationError(
                "SLUICE_POOL is not set: the Lambda pool's function must name its pool in its "
                "environment (the LambdaPool construct sets it)")
        return cls(pool=pool,
                   code_cache_dir=env.get("SLUICE_LAMBDA_CODE_CACHE_DIR", DEFAULT_CODE_CACHE_DIR),
                   heartbeat_interval=float(env.get("SLUICE_LAMBDA_HEARTBEAT_INTERVAL", "10")))


class LambdaPool:
    """One Lambda pool function's state across warm invocations: its client and its name."""

    def __init__(self, client: Any, settings: LambdaPoolSettings, *,
                 worker_name: str | None = None, sqs: Any = None) -> None:
        self.client, self.settings = client, settings
        #: To bring a record it leaves failed back soon (None: after the visibility timeout).
        self.sqs = sqs
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "lambda")
        #: This sandbox, as the pool shows it (one per warm container).
        self.worker_name = worker_name or f"{function[:200]}-{uuid.uuid4().hex[:8]}"

    @classmethod
    def from_environment(cls) -> LambdaPool:
        """Built as `sluice worker start` builds its client: from SLUICE_API_URL, SLUICE_KIND
        (aws: SigV4 with the function's role), SLUICE_REGION ..., scoped to its pool."""
        from sluice.client import get_client

        from .credentials import pool_client

        settings = LambdaPoolSettings.from_environment()
        client = pool_client(get_client(pool=settings.pool), settings.pool)
        sqs = None
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda: the pool's real queue
            import boto3

            sqs = boto3.client("sqs")
        return cls(client, settings, sqs=sqs)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Run every record of an SQS batch; the answer lists the records that come back."""
        # Every record failing is an answer too (they all come back), not a function error:
        # the mapping reports batch item failures (`ReportBatchItemFailures`).
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, processor=processor, context=context,
            record_handler=functools.partial(self.run_record, context=context))

    def run_record(self, record: Any, *, context: Any) -> str:
        """Run one record's flow run to its end; raise `RecordNotDone` to have it come back."""
        from sluice.models import RunMessage

        body = RunMessage.model_validate_json(record.body)  # malformed: fails, dead-letters
        try:
            return self._run(body, record, context=context)
        except RecordNotDone:
            show_again_in(self.sqs, record.event_source_arn, record.receipt_handle,
                          RETRY_SECONDS)
            raise

    def _run(self, body: Any, record: Any, *, context: Any) -> str:
        from .one_run import run_one
        from .supervisor import RunSettings

        left = context.get_remaining_time_in_millis() / 1000 - self.settings.stop_margin_seconds
        if left < MIN_START_SECONDS:
            raise RecordNotDone(f"run {body.flow_run_id}: {left:.0f} s left in this invocation, "
                                "too little to start it; it comes back")
        outcome = run_one(
            client=self.client, pool=self.settings.pool, flow_run_id=body.flow_run_id,
            worker_name=self.worker_name, attempt=body.attempt, claim_id=record.message_id,
            deadline=time.monotonic() + left, deadline_message=LAMBDA_DEADLINE_MESSAGE,
            code_cache_dir=self.settings.code_cache_dir,
            settings=RunSettings(heartbeat_interval=self.settings.heartbeat_interval,
                                 cancel_grace=STOP_GRACE_SECONDS))
        log.info("run %s: %s", body.flow_run_id, outcome.reason)
        if outcome.retry:
            raise RecordNotDone(f"run {body.flow_run_id}: {outcome.reason}")
        return outcome.reason


@functools.lru_cache(maxsize=1)
def pool_from_environment() -> LambdaPool:
    """The function's `LambdaPool`, built on the first invocation and kept while the sandbox is
    warm (Lambda reuses the process; a new client per invocation would cost a connection)."""
    return LambdaPool.from_environment()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point ("sluice_worker.lambda_pool.handler")."""
    return pool_from_environment().handle(event, context)
