"""The control plane's use cases. The API routes and the scheduler/monitor handlers call these;
each receives the ports it needs as keyword arguments (no globals), and takes `now` for tests."""

from .deployments import (
    create_deployment,
    delete_deployment,
    get_deployment,
    list_deployments,
    run_deployment,
    update_deployment,
)
from .events import list_task_runs, read_logs, record_events
from .flow_runs import (
    create_flow_run,
    create_flow_run_once,
    enqueue_due_runs,
    get_flow_run,
    list_flow_runs,
    list_state_history,
    public_view,
)
from .claims import claim_flow_run
from .lifecycle import (
    apply_server_transition,
    cancel_flow_run,
    heartbeat,
    mark_crashed,
    retry_flow_run,
    set_state,
)
from .parameter_schema import validate_parameters
from .pools import create_pool, ensure_pool, get_pool, list_pools
from .queueing import ENQUEUE_HORIZON

__all__ = [
    "create_flow_run", "create_flow_run_once", "apply_server_transition", "get_flow_run",
    "list_flow_runs", "list_state_history", "public_view",
    "enqueue_due_runs", "set_state", "claim_flow_run", "heartbeat", "cancel_flow_run",
    "retry_flow_run", "mark_crashed", "record_events", "list_task_runs", "read_logs",
    "create_deployment", "get_deployment", "list_deployments", "update_deployment",
    "delete_deployment", "run_deployment", "create_pool", "ensure_pool", "get_pool",
    "list_pools", "validate_parameters", "ENQUEUE_HORIZON",
]
