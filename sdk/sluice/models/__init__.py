"""The wire contract shared by every part of Sluice (pydantic models only, no I/O)."""

from .api import (
    MAX_EVENTS_BATCH_BYTES,
    MAX_EVENTS_PER_BATCH,
    MAX_PAGE_LIMIT,
    ClaimRequest,
    ClaimResponse,
    ErrorBody,
    EventsAccepted,
    EventsBatch,
    FlowRunCreate,
    HeartbeatRequest,
    HeartbeatResponse,
    Page,
    RunMessage,
    SetStateRequest,
    SetStateResponse,
    TransitionStatus,
)
from .deployments import (
    DEFAULT_POOL,
    POOL_NAME_PATTERN,
    CodeSource,
    CollisionStrategy,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    DeploymentUpdate,
    Pool,
    PoolCreate,
    Schedule,
    SourceKind,
    Worker,
)
from .ids import new_id
from .runs import (
    MAX_LOG_MESSAGE_CHARS,
    MAX_PARAMETERS_BYTES,
    MAX_TAG_CHARS,
    MAX_TAGS,
    FlowRun,
    LogLevel,
    LogRecord,
    TaskRun,
)
from .states import (
    DEFAULT_STATE_NAMES,
    MAX_STATE_MESSAGE_CHARS,
    NAMED_STATES,
    TERMINAL_STATE_TYPES,
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    TimedOut,
    new_state,
    utcnow,
)

__all__ = [
    # states
    "StateType", "State", "TERMINAL_STATE_TYPES", "NAMED_STATES", "DEFAULT_STATE_NAMES",
    "MAX_STATE_MESSAGE_CHARS", "new_state", "utcnow",
    "Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying", "Paused",
    "Cancelling", "Cancelled", "Completed", "Cached", "Failed", "TimedOut", "Crashed",
    # runs
    "new_id", "FlowRun", "TaskRun", "LogRecord", "LogLevel",
    "MAX_PARAMETERS_BYTES", "MAX_LOG_MESSAGE_CHARS", "MAX_TAGS", "MAX_TAG_CHARS",
    # api
    "Page", "ErrorBody", "FlowRunCreate", "SetStateRequest", "SetStateResponse",
    "TransitionStatus", "RunMessage", "ClaimRequest", "ClaimResponse", "HeartbeatRequest", "HeartbeatResponse",
    "EventsBatch", "EventsAccepted", "MAX_EVENTS_PER_BATCH", "MAX_EVENTS_BATCH_BYTES",
    "MAX_PAGE_LIMIT",
    # deployments and pools
    "Deployment", "DeploymentCreate", "DeploymentUpdate", "DeploymentRunRequest", "CodeSource",
    "SourceKind", "Schedule", "CollisionStrategy", "Pool", "PoolCreate", "Worker",
    "DEFAULT_POOL", "POOL_NAME_PATTERN",
]
