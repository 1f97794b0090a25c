"""The wire contract shared by every part of Sluice (pydantic models only, no I/O)."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): `from sluice import flow, task` needs the name rules and
# bounds, not the ~100 pydantic models of the API, whose building is most of the import time.
#: Each submodule and the names this package re-exports from it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "api": ("MAX_EVENTS_BATCH_BYTES", "MAX_EVENTS_PER_BATCH", "MAX_PAGE_LIMIT", "ClaimRequest",
        "ClaimResponse", "ErrorBody", "EventsAccepted", "EventsBatch", "FlowRunCreate",
        "HeartbeatRequest", "HeartbeatResponse", "LeaseTerms", "Page", "RunMessage",
        "SetStateRequest", "SetStateResponse", "TransitionStatus"),
    "automations": ("Action", "Automation", "AutomationCreate", "AutomationUpdate",
        "CancelRunAction", "EventMatch", "NotifyAction", "PauseDeploymentAction",
        "PausePoolAction", "ProactiveTrigger", "ReactiveTrigger", "ResumeDeploymentAction",
        "ResumePoolAction", "ResumeRunAction", "RunDeploymentAction", "SuspendRunAction",
        "Trigger"),
    "bounds": ("MAX_BACKFILL_RUNS", "MAX_CACHE_EXPIRATION_SECONDS", "MAX_CONCURRENCY_LIMIT",
        "MAX_TAG_CHARS", "MAX_FLOW_WORKERS", "MAX_INTERVAL_SECONDS", "MAX_LATENESS_SECONDS", "MAX_RETRIES",
        "MAX_RETRY_DELAY_SECONDS", "MAX_RETRY_JITTER_FACTOR", "MAX_TIMEOUT_SECONDS"),
    "deployments": ("DEFAULT_POOL", "LAMBDA_MAX_RUN_SECONDS", "MAX_BUNDLE_BYTES", "POOL_TYPES",
        "SHA256_PATTERN", "BackfillRequest", "BackfillSummary", "BundleLocation",
        "BundleUploadRequest", "CodeSource", "CollisionStrategy", "Deployment",
        "DeploymentCreate", "DeploymentRunRequest", "DeploymentUpdate", "Pool", "PoolCreate",
        "PoolUpdate", "Schedule", "SourceKind", "Worker", "WorkerHeartbeat"),
    "ids": ("new_id",),
    "names": ("MAX_NAME_CHARS", "MAX_POOL_NAME_CHARS", "POOL_NAME_PATTERN", "DeploymentName",
        "FlowName", "NameKind", "PoolName", "RunName", "Tag", "TaskName", "WorkerName",
        "check_name", "escaped"),
    "event_requests": ("MAX_EVENTS_PER_EMIT", "EmitEventsRequest", "EventDraft",
        "EventsEmitted"),
    "sluice_events": ("EVENT_SCHEMA_VERSION", "MAX_EVENT_BYTES", "MAX_RELATED_RESOURCES",
        "EventResource", "SluiceEvent"),
    "sources": ("check_entrypoint", "check_git_ref", "check_relative_path", "check_repository"),
    "secrets": ("SECRET_MASK", "SECRET_NAME_PATTERN", "SECRET_REFERENCE_KEY", "is_secret_name",
        "secret_reference", "secret_reference_name"),
    "runs": ("MAX_LOG_MESSAGE_CHARS", "MAX_PARAMETERS_BYTES", "MAX_TAGS",
        "FlowRun", "LogLevel", "LogRecord", "TaskRun"),
    "states": ("DEFAULT_STATE_NAMES", "MAX_STATE_MESSAGE_CHARS", "NAMED_STATES",
        "TERMINAL_STATE_TYPES", "AwaitingRetry", "Cached", "Cancelled", "Cancelling", "Completed",
        "Crashed", "Failed", "Late", "Paused", "Pending", "Retrying", "Running",
        "SUSPENDED_STATE_NAME", "Scheduled", "State", "StateType", "Suspended", "TimedOut",
        "new_state", "utcnow"),
    "worker_leases": ("MAX_LEASES_PER_HEARTBEAT", "HeldLease", "RunLeaseOutcome",
        "WorkerLeaseAnswer", "WorkerLeaseHeartbeat"),
}
_SUBMODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE_OF))

__all__ = [
    # states
    "StateType", "State", "TERMINAL_STATE_TYPES", "NAMED_STATES", "DEFAULT_STATE_NAMES",
    "MAX_STATE_MESSAGE_CHARS", "new_state", "utcnow",
    "Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying", "Paused",
    "Cancelling", "Cancelled", "Completed", "Cached", "Failed", "TimedOut", "Crashed",
    "Suspended", "SUSPENDED_STATE_NAME",
    # runs
    "new_id", "FlowRun", "TaskRun", "LogRecord", "LogLevel",
    "MAX_PARAMETERS_BYTES", "MAX_LOG_MESSAGE_CHARS", "MAX_TAGS", "MAX_TAG_CHARS",
    # api
    "Page", "ErrorBody", "FlowRunCreate", "SetStateRequest", "SetStateResponse",
    "TransitionStatus", "RunMessage", "ClaimRequest", "ClaimResponse", "HeartbeatRequest", "HeartbeatResponse",
    "LeaseTerms",
    "EventsBatch", "EventsAccepted", "MAX_EVENTS_PER_BATCH", "MAX_EVENTS_BATCH_BYTES",
    "MAX_PAGE_LIMIT",
    # deployments and pools
    "Deployment", "DeploymentCreate", "DeploymentUpdate", "DeploymentRunRequest", "CodeSource",
    "SourceKind", "Schedule", "CollisionStrategy", "Pool", "PoolCreate", "PoolUpdate", "Worker",
    "DEFAULT_POOL", "POOL_NAME_PATTERN", "WorkerHeartbeat", "BundleUploadRequest",
    "POOL_TYPES", "LAMBDA_MAX_RUN_SECONDS",
    "WorkerLeaseHeartbeat", "WorkerLeaseAnswer", "HeldLease", "RunLeaseOutcome",
    "MAX_LEASES_PER_HEARTBEAT",
    "BackfillRequest", "BackfillSummary",
    "BundleLocation", "SHA256_PATTERN", "MAX_BUNDLE_BYTES",
    # user-chosen names, code sources
    "check_name", "NameKind", "FlowName", "DeploymentName", "PoolName", "TaskName", "RunName",
    "WorkerName", "Tag", "MAX_NAME_CHARS", "MAX_POOL_NAME_CHARS", "escaped",
    "check_entrypoint", "check_git_ref", "check_relative_path", "check_repository",
    # bounds of numeric inputs
    "MAX_RETRIES", "MAX_RETRY_DELAY_SECONDS", "MAX_TIMEOUT_SECONDS", "MAX_CONCURRENCY_LIMIT",
    "MAX_INTERVAL_SECONDS", "MAX_LATENESS_SECONDS", "MAX_BACKFILL_RUNS",
    "MAX_RETRY_JITTER_FACTOR", "MAX_FLOW_WORKERS", "MAX_CACHE_EXPIRATION_SECONDS",
    # secrets in parameters
    "SECRET_REFERENCE_KEY", "SECRET_MASK", "SECRET_NAME_PATTERN", "is_secret_name",
    "secret_reference", "secret_reference_name",
    # events (issue 17)
    "SluiceEvent", "EventResource", "EVENT_SCHEMA_VERSION", "MAX_EVENT_BYTES",
    "MAX_RELATED_RESOURCES",
    # automations (issue 17)
    "Automation", "AutomationCreate", "AutomationUpdate", "EventMatch", "Trigger",
    "ReactiveTrigger", "ProactiveTrigger", "Action", "RunDeploymentAction", "CancelRunAction",
    "SuspendRunAction", "ResumeRunAction",
    "PauseDeploymentAction", "ResumeDeploymentAction", "PausePoolAction", "ResumePoolAction",
    "NotifyAction",
]
