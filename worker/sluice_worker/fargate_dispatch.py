"""The dispatcher of a Fargate pool: a Lambda function that starts one ECS Fargate task per run
and reports the tasks that stop before their run ended.

It is invoked two ways (the CDK construct `FargatePool` wires both to `handler`):

* by an SQS event source mapping on the pool's queue, with batches of run messages: each record
  is claimed (the message id names the claim, so a redelivered message gets the same lease back
  instead of a second attempt) and started with `ecs.RunTask` of the pool's task definition (one
  definition per pool and image, registered by the construct; never one per run), passing the
  run id, lease, pool and attempt in the container's environment (`fargate_settings`). The task
  runs `sluice worker run-one`, which holds that lease, heartbeats and reports like a worker.
  Records whose task could not be started (Fargate capacity, throttling) are reported as batch
  item failures, the Powertools way, so SQS delivers them again;
* by an EventBridge rule for "ECS Task State Change" events of the pool's tasks: a task that
  STOPPED while its run is not over under the task's lease is reported Crashed with the stop
  reason and exit code (a run in Cancelling is reported Cancelled instead).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError as PydanticValidationError

from sluice import exceptions as errors
from sluice.models import Cancelled, Crashed, RunMessage, StateType

from .fargate_settings import (
    ENV_ATTEMPT,
    ENV_FLOW_RUN_ID,
    ENV_LEASE,
    ENV_POOL,
    FargateDispatchSettings,
)
from .sqs_records import show_again_in

SERVICE_NAME = "sluice-fargate-dispatch"
#: Structured logs (the other functions' format); `%s` arguments as with `logging`.
log = Logger(service=SERVICE_NAME)
#: The name the dispatcher claims runs under (the task holds the lease it got).
DISPATCHER_WORKER_NAME = "fargate-dispatcher"
#: ECS RunTask `startedBy`: at most 36 letters, digits, hyphens and underscores (ECS API
#: reference, RunTask). Run ids are 32 hex characters, so the run id fits as it is.
STARTED_BY_MAX_CHARS = 36
#: ECS RunTask `clientToken`: at most 64 characters (ECS API reference, RunTask). The lease is
#: the token: a record delivered again under the same lease gets the same task back.
CLIENT_TOKEN_MAX_CHARS = 64
#: A message this early goes back to the queue (as on a worker, `supervisor`); later ones
#: start at once, since a task takes longer than this to come up anyway.
MAX_EARLY_SECONDS = 5.0
#: A record whose task did not start shows again after this long: a few tries fit in the
#: claim's start-up grace (`FARGATE_STARTUP_GRACE_SECONDS`, 300 s), whose lease each repeated
#: claim renews. Each try counts towards the queue's maxReceiveCount (then the dead-letter
#: queue; the lease expires and the monitor reports the run Crashed, retried if allowed).
RETRY_SECONDS = 30
#: SQS ChangeMessageVisibility: at most 12 hours (SQS quotas).
MAX_VISIBILITY_SECONDS = 43_200
#: The EventBridge detail type of ECS task state changes.
TASK_STATE_CHANGE = "ECS Task State Change"
#: RunTask errors that a second delivery cannot fix (the pool's settings or permissions are
#: wrong): the run is reported Crashed with the error at once, instead of its message coming
#: back until the dead-letter queue. Anything else (ThrottlingException, ServerException, the
#: network, `failures` for capacity) is retried through the queue.
PERMANENT_RUN_TASK_ERRORS = frozenset({
    "AccessDeniedException", "ClientException", "ClusterNotFoundException",
    "InvalidParameterException", "PlatformTaskDefinitionIncompatibilityException",
    "PlatformUnknownException", "UnsupportedFeatureException"})


class RetryLater(errors.SluiceError):
    """A record that must come back later: its task did not start (capacity, throttling), the
    control plane could not be reached, or the run is not due yet. The record fails (the
    batch answer lists it) and shows again after `seconds` (not the queue's visibility
    timeout, six times the function's: the claim's start-up grace would run out first)."""

    def __init__(self, message: str, seconds: int | None = None) -> None:
        super().__init__(message)
        #: None: the dispatcher's `retry_seconds`.
        self.seconds = seconds


class MalformedInput(errors.ValidationError):
    """A message or event the dispatcher cannot read; retrying cannot fix it."""


@dataclass
class FargateDispatcher:
    """Starts runs' tasks and reports stopped ones for one pool. `client`: a `SluiceClient`
    scoped to the pool (worker routes); `ecs`: a boto3 ECS client."""

    client: Any
    ecs: Any
    settings: FargateDispatchSettings
    #: A boto3 SQS client: records to retry are shown again sooner (None: after the queue's
    #: visibility timeout).
    sqs: Any = None
    worker_name: str = DISPATCHER_WORKER_NAME
    retry_seconds: int = RETRY_SECONDS

    # -- SQS: start a task per run -----------------------------------------------------------------
    def dispatch(self, message_id: str, body: str) -> str:
        """Claim the run of one queue message and start its task; returns what happened (for
        logs). Raises `RetryLater` to leave the record on the queue, `MalformedInput` to let
        it dead-letter (kept for inspection, as a worker does)."""
        try:
            message = RunMessage.model_validate_json(body)
        except (PydanticValidationError, ValueError) as exc:
            raise MalformedInput(f"malformed run message {message_id}: {body[:200]!r}") from exc
        run_id = message.flow_run_id
        if message.scheduled_at is not None:
            early = (message.scheduled_at - datetime.now(timezone.utc)).total_seconds()
            if early > MAX_EARLY_SECONDS:
                raise RetryLater(f"run {run_id} is due in {early:.0f} s",
                                 min(int(early), MAX_VISIBILITY_SECONDS))
        try:
            claim = self.client.claim_flow_run(run_id, self.worker_name, attempt=message.attempt,
                                               claim_id=message_id, requeue=True)
        except (errors.Conflict, errors.NotFound) as exc:
            log.info("run %s not claimable (%s); message dropped", run_id, exc)
            return "not-ours"
        except errors.Throttled as exc:
            if (exc.details or {}).get("requeued"):
                return "waiting"  # it waits for a concurrency slot under a fresh message
            raise RetryLater(f"claim of run {run_id} deferred: {exc}") from exc
        except errors.ServiceUnavailable as exc:
            raise RetryLater(f"claim of run {run_id} failed: {exc}") from exc
        except (errors.ValidationError, errors.BadRequest) as exc:
            raise MalformedInput(f"run message {message_id} names no claimable run: "
                                 f"{exc}") from exc
        return self._start_task(message, claim.lease)

    def run_task_request(self, message: RunMessage, lease: str) -> dict[str, Any]:
        """The RunTask request of one run (what `dispatch` sends)."""
        settings = self.settings
        environment = {ENV_FLOW_RUN_ID: message.flow_run_id, ENV_LEASE: lease,
                       ENV_POOL: settings.pool, ENV_ATTEMPT: str(message.attempt)}
        network = {"subnets": settings.subnet_ids,
                   "assignPublicIp": "ENABLED" if settings.assign_public_ip else "DISABLED"}
        if settings.security_group_ids:
            network["securityGroups"] = settings.security_group_ids
        request: dict[str, Any] = {
            "cluster": settings.cluster,
            "taskDefinition": settings.task_definition,
            "count": 1,
            "startedBy": message.flow_run_id[:STARTED_BY_MAX_CHARS],
            "clientToken": lease[:CLIENT_TOKEN_MAX_CHARS],
            "networkConfiguration": {"awsvpcConfiguration": network},
            "overrides": {"containerOverrides": [{
                "name": settings.container_name,
                "environment": [{"name": k, "value": v} for k, v in environment.items()]}]},
        }
        if settings.capacity_provider:
            request["capacityProviderStrategy"] = [
                {"capacityProvider": settings.capacity_provider, "weight": 1}]
        else:
            request["launchType"] = "FARGATE"
        return request

    def _start_task(self, message: RunMessage, lease: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        run_id = message.flow_run_id
        try:
            answer = self.ecs.run_task(**self.run_task_request(message, lease))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in PERMANENT_RUN_TASK_ERRORS:
                raise RetryLater(f"RunTask for run {run_id} failed: {exc}") from exc
            self._report(run_id, lease, Crashed(
                f"Fargate could not start the run's task: {code}: "
                f"{exc.response.get('Error', {}).get('Message', exc)}; check the Fargate pool's "
                "cluster, task definition, subnets and the dispatcher's role (FargatePool)",
                details={"run_task_error": code}), transition_key=f"run-task:{lease}")
            return "not-startable"
        except BotoCoreError as exc:  # the network, credentials: the queue retries
            raise RetryLater(f"RunTask for run {run_id} failed: {exc}") from exc
        failures = answer.get("failures") or []
        tasks = answer.get("tasks") or []
        if failures or not tasks:
            # Capacity ("Capacity is unavailable at this time") and similar: SQS brings the
            # record back and its claim gets the same lease again (same message id).
            reasons = "; ".join(f"{f.get('reason')}{' ' + f['detail'] if f.get('detail') else ''}"
                                for f in failures) or "no task in the answer"
            raise RetryLater(f"Fargate did not start a task for run {run_id}: {reasons}")
        log.info("started task %s for run %s", tasks[0].get("taskArn"), run_id)
        return "started"

    def show_again_in(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Make a failed record visible again after `seconds` (best effort: without it, it
        shows after the queue's visibility timeout)."""
        show_again_in(self.sqs, queue_arn, receipt_handle, seconds)

    # -- EventBridge: stopped tasks --------------------------------------------------------------
    def task_stopped(self, detail: dict[str, Any]) -> str:
        """Report the run of a task that stopped while the run was not over under the task's
        lease; returns what happened. Raises `MalformedInput` for a task event that names no
        run or lease (not a task of this pool's dispatcher)."""
        if detail.get("lastStatus") != "STOPPED":
            return "not-stopped"
        run_id = detail.get("startedBy")
        environment = self._container_environment(detail)
        lease = environment.get(ENV_LEASE)
        if not isinstance(run_id, str) or not run_id or not lease \
                or environment.get(ENV_FLOW_RUN_ID, run_id) != run_id:
            raise MalformedInput("a stopped task without a run id (startedBy) and lease "
                                 f"({ENV_LEASE} override): {detail.get('taskArn')}")
        try:
            run = self.client.get_flow_run(run_id)
        except errors.NotFound:
            return "unknown-run"
        if run.state.is_terminal:
            return "run-ended"  # the usual end: run-one reported, then the task exited
        if run.state.type == StateType.CANCELLING:
            state = Cancelled("cancelled by request; its Fargate task stopped: "
                              f"{self._stop_summary(detail)}")
        else:
            state = Crashed(f"Fargate task stopped: {self._stop_summary(detail)}",
                            details=self._stop_details(detail))
        return self._report(run_id, lease, state,
                            transition_key=f"stopped:{detail.get('taskArn') or lease}")

    def _container(self, detail: dict[str, Any]) -> dict[str, Any]:
        containers = [c for c in detail.get("containers") or [] if isinstance(c, dict)]
        named = [c for c in containers if c.get("name") == self.settings.container_name]
        return (named or containers or [{}])[0]

    def _container_environment(self, detail: dict[str, Any]) -> dict[str, str]:
        overrides = (detail.get("overrides") or {}).get("containerOverrides") or []
        for override in overrides:
            if isinstance(override, dict) and override.get("name") == self.settings.container_name:
                return {str(pair.get("name")): str(pair.get("value"))
                        for pair in override.get("environment") or [] if isinstance(pair, dict)}
        return {}

    def _stop_summary(self, detail: dict[str, Any]) -> str:
        container = self._container(detail)
        reason = detail.get("stoppedReason") or detail.get("stopCode") or "no reason given"
        code = container.get("exitCode")
        summary = f"{reason} ({'exit code ' + str(code) if code is not None else 'no exit code'})"
        if container.get("reason"):  # e.g. "OutOfMemoryError: Container killed due to memory"
            summary += f"; container: {container['reason']}"
        return summary

    def _stop_details(self, detail: dict[str, Any]) -> dict[str, Any]:
        container = self._container(detail)
        return {"exit_code": container.get("exitCode"), "stop_code": detail.get("stopCode"),
                "stopped_reason": detail.get("stoppedReason"), "task_arn": detail.get("taskArn")}

    def _report(self, run_id: str, lease: str, state: Any, *, transition_key: str) -> str:
        # One transition id per task (or failed start): a redelivered event is a no-op.
        transition_id = uuid.uuid5(uuid.NAMESPACE_URL, f"sluice:{transition_key}").hex
        try:
            answer = self.client.set_flow_run_state(run_id, state, transition_id, lease=lease)
        except errors.Conflict as exc:
            log.info("run %s is no longer this task's (%s): nothing reported", run_id, exc)
            return "not-this-attempt"
        if answer.status.value != "ACCEPT":
            log.info("%s not recorded for %s: %s", state.name, run_id, answer.reason)
            return "refused"
        log.info("reported %s for run %s: %s", state.name, run_id, state.message)
        return state.name.lower()


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(build_dispatcher: Callable[[], FargateDispatcher]) -> Handler:
    """A Lambda handler that builds its dispatcher on the first call (clients are reused by
    later invocations of the same sandbox) and serves both event kinds (module docstring).
    SQS batches answer `{"batchItemFailures": [...]}`; task events answer a summary. Events of
    neither kind, and task events that name no run, are counted (`FargateEventsMalformed`,
    an EMF metric) and ignored: retrying cannot fix them."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    built: list[FargateDispatcher] = []

    def dispatcher() -> FargateDispatcher:
        if not built:
            built.append(build_dispatcher())
        return built[0]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics = EphemeralMetrics(namespace="Sluice", service=SERVICE_NAME)
        try:
            if isinstance(event, dict) and isinstance(event.get("Records"), list):
                outcomes: dict[str, int] = {}

                def record_handler(record: Any) -> None:
                    try:
                        outcome = dispatcher().dispatch(record.message_id, record.body)
                    except RetryLater as exc:
                        seconds = dispatcher().retry_seconds if exc.seconds is None \
                            else exc.seconds
                        log.warning("record %s comes back in %d s: %s", record.message_id,
                                    seconds, exc)
                        dispatcher().show_again_in(record.event_source_arn,
                                                   record.receipt_handle, seconds)
                        raise
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

                # No exception when every record fails: the answer lists them all, and the
                # event source mapping returns just those to the queue.
                processor = BatchProcessor(event_type=EventType.SQS,
                                           raise_on_entire_batch_failure=False)
                answer = process_partial_response(event, record_handler, processor, context)
                started = outcomes.get("started", 0)
                metrics.add_metric("FargateTasksStarted", MetricUnit.Count, started)
                metrics.add_metric("FargateRecordsFailed", MetricUnit.Count,
                                   len(answer.get("batchItemFailures", [])))
                log.info("dispatched %d record(s): %s, %d failed", len(event["Records"]),
                         outcomes, len(answer.get("batchItemFailures", [])))
                return answer
            if isinstance(event, dict) and event.get("detail-type") == TASK_STATE_CHANGE \
                    and isinstance(event.get("detail"), dict):
                try:
                    outcome = dispatcher().task_stopped(event["detail"])
                except MalformedInput as exc:
                    log.warning("ignored: %s", exc)
                    metrics.add_metric("FargateEventsMalformed", MetricUnit.Count, 1)
                    return {"outcome": "malformed"}
                if outcome in ("crashed", "cancelled"):
                    metrics.add_metric("FargateTasksStoppedEarly", MetricUnit.Count, 1)
                return {"outcome": outcome}
            log.warning("ignored an event that is neither an SQS batch nor an ECS task state "
                        "change: %.200r", event)
            metrics.add_metric("FargateEventsMalformed", MetricUnit.Count, 1)
            return {"outcome": "malformed"}
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()

    return handler


def dispatcher_from_environment() -> FargateDispatcher:
    """The dispatcher the function's environment describes (set by the CDK construct):
    `FargateDispatchSettings`, and the control plane as for any worker (SLUICE_API_URL,
    SLUICE_KIND=aws, SLUICE_REGION; SigV4 with the function's role, scoped to the pool)."""
    import boto3

    from sluice.client import get_client

    from .credentials import pool_client

    settings = FargateDispatchSettings()  # type: ignore[call-arg]  # from the environment
    client = pool_client(get_client(pool=settings.pool), settings.pool)
    return FargateDispatcher(client=client, ecs=boto3.client("ecs"), settings=settings,
                             sqs=boto3.client("sqs"))


handler = make_handler(dispatcher_from_environment)
