"""Request and response bodies of the control-plane API."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from .bounds import MAX_RETRIES, MAX_RETRY_DELAY_SECONDS
from .names import ClientId, Parameters, RunName, Tag, WorkerName, check_name, check_printable
from .runs import LogRecord, TaskRun
from .states import State, StateType

T = TypeVar("T")

#: Most records (task runs + logs) in one events batch, and its largest JSON size. API Gateway
#: HTTP APIs take 10 MB per request and Lambda 6 MB synchronous payloads
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html);
#: the batch also has to fit DynamoDB's 25-item transactions in a handful of calls.
MAX_EVENTS_PER_BATCH = 500
MAX_EVENTS_BATCH_BYTES = 1024 * 1024
#: Largest page a list call returns.
MAX_PAGE_LIMIT = 200


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    """The one JSON shape of every API error."""

    error: str
    message: str
    details: Any = None


class FlowRunCreate(_Request):
    #: A flow name (`sluice.models.names`); a run of a deployment carries its deployment's,
    #: which may have been stored before the rules (then only invisible characters are refused).
    flow_name: str = Field(min_length=1, max_length=256)
    name: RunName | None = None
    deployment_id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    #: Start at (or after) this time; absent means now.
    scheduled_at: datetime | None = None
    #: A run created twice with the same key is created once (the second call returns it).
    idempotency_key: str | None = Field(default=None, max_length=256)
    #: Client-generated id (the SDK's flow runs); absent means the server makes one.
    id: ClientId | None = None
    #: Scheduled (the default) or Pending: a flow started as a plain script (or a subflow)
    #: creates its run Pending and holds it with `lease`. Other states are refused.
    state: State | None = None
    #: The lease of a run its creator executes (Pending, in no pool): chosen by the creator (a
    #: random secret of 16+ characters), so a resent create holds the same lease and nobody
    #: else learns it. Every later write of the run must carry it, and the creator must renew it
    #: with heartbeats, or the monitor declares the run Crashed.
    lease: str | None = Field(default=None, min_length=16, max_length=128)
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_delay_seconds: float = Field(default=0, ge=0, le=MAX_RETRY_DELAY_SECONDS,
                                       allow_inf_nan=False)
    parent_flow_run_id: str | None = None
    parent_task_run_id: str | None = None

    @model_validator(mode="after")
    def _flow_name(self) -> FlowRunCreate:
        try:
            if self.deployment_id is None:
                check_name(self.flow_name, "flow")
            else:
                check_printable(self.flow_name, "flow name")
        except ValueError as exc:
            raise PydanticCustomError("invalid_name", "flow_name: {reason}",
                                      {"reason": str(exc)}) from None
        return self


class SetStateRequest(_Request):
    state: State
    transition_id: str = Field(min_length=1, max_length=128)
    lease: str | None = None
    #: Refuse the transition unless the run is currently of this type (optimistic concurrency).
    expect: StateType | None = None


class TransitionStatus(str, enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    #: The run should stop (e.g. it was cancelled, or the lease is no longer the holder's).
    ABORT = "ABORT"


class SetStateResponse(BaseModel):
    status: TransitionStatus
    state: State
    reason: str | None = None


class ClaimRequest(_Request):
    worker: WorkerName
    #: The `attempt` of the queue message being claimed: a late duplicate message of an earlier
    #: attempt then cannot claim a retry before its delay.
    attempt: int | None = Field(default=None, ge=0)
    #: Names this claim (workers send the queue message's id). Claiming again with the same id
    #: (a retry whose answer was lost) returns the same lease; a claim with another id of a run
    #: already claimed for this attempt is refused with 409, even from the same worker (it
    #: holds a second copy of the message, whose run is already being started).
    claim_id: str | None = Field(default=None, min_length=1, max_length=256)
    #: When the run must wait for a concurrency slot, the control plane sends a fresh (delayed)
    #: message for it and says so (`details.requeued` of the 429), and the worker deletes the
    #: message it holds: a run may wait for hours without wearing out its message's receive
    #: count (which would dead-letter it). Workers set this; a caller that cannot delete the
    #: message it claimed from must not.
    requeue: bool = False
    #: The claiming worker process's session (`WorkerLeaseHeartbeat.session`): the run's lease
    #: is then renewed by that session's per-worker heartbeats. Absent: per-run heartbeats.
    session: str | None = Field(default=None, min_length=1, max_length=64,
                                pattern=r"^[0-9A-Za-z_-]+$")
    #: Start the attempt in the claim's write (Scheduled -> Running, one write and one request
    #: fewer per run); the answer's `flow_run` is then Running. A run under a concurrency limit
    #: is still claimed Pending (its claim may be taken back). Absent: Pending, as before.
    start: bool = False
    #: Put the run's deployment in the answer (`ClaimResponse.deployment`): the worker needs
    #: no separate request to read it.
    with_deployment: bool = False


class RunMessage(BaseModel):
    """The body of a pool-queue message: which run to claim, for which attempt."""

    model_config = ConfigDict(extra="ignore")

    flow_run_id: str
    pool: str
    #: The run's `run_count` when the message was sent; the claim makes it `attempt + 1`.
    attempt: int = 0
    #: When the run is due: the message may appear up to a second before (SQS delays are whole
    #: seconds) and the worker waits until then.
    scheduled_at: datetime | None = None


class LeaseTerms(BaseModel):
    """What the holder of a lease must know to keep it (in claim and heartbeat answers)."""

    #: When the lease expires unless renewed (control-plane time). The holder counts the lease's
    #: length from when it sent the request, on its own monotonic clock.
    lease_expires_at: datetime | None = None
    #: The length of the lease from each renewal.
    lease_seconds: float | None = None
    #: How often the control plane wants the lease renewed (a third of its length).
    heartbeat_interval_seconds: float | None = None


class ClaimResponse(LeaseTerms):
    lease: str
    flow_run: Any  # FlowRun; Any keeps the OpenAPI schema simple for the generic client
    #: The run's deployment (a `Deployment`), when the claim asked `with_deployment`.
    deployment: Any = None


class HeartbeatRequest(_Request):
    lease: str = Field(min_length=1)


class HeartbeatResponse(LeaseTerms):
    cancel_requested: bool = False
    state: State


class EventsBatch(_Request):
    """Task-run records and log lines of one flow run; idempotent by record id."""

    task_runs: list[TaskRun] = Field(default_factory=list)
    #: Task runs reported here for the first time and already final (the sender never sent an
    #: earlier record of them, and sends none later): the store may keep them packed, several
    #: to one item (issue 20). A record here that is not final is stored as a `task_runs` one.
    #: Counted with `task_runs` against the batch limits and in `EventsAccepted.task_runs`. A
    #: control plane from before it refuses the field (422 naming it): the sender then moves
    #: these records to `task_runs` and stops using it.
    finished_task_runs: list[TaskRun] = Field(default_factory=list)
    logs: list[LogRecord] = Field(default_factory=list)
    #: The lease of the attempt that sends the batch. A batch without the run's current lease
    #: (none, or that of an attempt that lost the run) is refused with 409, like its state
    #: changes; so are task runs for a run that already ended (log lines of its last attempt
    #: are still taken: a process's last output arrives after its final state).
    lease: str | None = Field(default=None, max_length=256)
    #: A state for the run, applied after the batch's records are stored (issue 20: the final
    #: state rides with the last batch, one request fewer per run). The same rules as
    #: `SetStateRequest` with `lease` and `transition_id`; the answer is `EventsAccepted.transition`.
    state: State | None = None
    transition_id: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _state_has_transition_id(self) -> EventsBatch:
        if self.state is not None and self.transition_id is None:
            raise PydanticCustomError(
                "transition_id_missing",
                "transition_id: a batch carrying a state must name its transition_id", {})
        return self

    def __repr_args__(self) -> Any:
        # Counts, not contents: frameworks format request models into debug messages eagerly,
        # and the full repr of a 500-record batch costs more than storing it.
        yield "task_runs", len(self.task_runs)
        yield "finished_task_runs", len(self.finished_task_runs)
        yield "logs", len(self.logs)


class EventsAccepted(BaseModel):
    task_runs: int
    logs: int
    #: The answer to the batch's `state` (None, and left out: the batch carried none).
    transition: SetStateResponse | None = None

    @model_serializer(mode="wrap")
    def _without_absent_transition(self, handler: Any) -> Any:
        # Answers to batches without a state stay as they were for older clients and tests.
        data = handler(self)
        if isinstance(data, dict) and data.get("transition", 0) is None:
            del data["transition"]
        return data
