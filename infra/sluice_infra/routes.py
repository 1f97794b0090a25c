"""Which HTTP API routes the stack exposes, and which requests a worker may make.

API Gateway sends each route family to the one `api` function, whose Powertools resolver does
the fine routing and answers 404 itself. Families, not one route per API path, because an HTTP
API refuses sibling path variables with different names (`/deployments/{deployment_id}` beside
`/deployments/{flow_name}/{name}`), and because a family keeps the gateway in step with the API
when a route is added. Unknown top-level paths are refused by the gateway without invoking
Lambda. tests/infra checks that every path of the API's OpenAPI document falls in a family.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayRoute:
    """One HTTP API route: a method ("ANY" for all) and a path (`{proxy+}` is greedy)."""

    method: str
    path: str


ROUTE_FAMILIES = ("flow-runs", "deployments", "pools", "bundles")

GATEWAY_ROUTES: tuple[GatewayRoute, ...] = (
    GatewayRoute("GET", "/health"),
    GatewayRoute("GET", "/openapi.json"),
    *(route for family in ROUTE_FAMILIES for route in (
        GatewayRoute("ANY", f"/{family}"),
        GatewayRoute("ANY", f"/{family}/{{proxy+}}"),
    )),
)


@dataclass(frozen=True)
class WorkerRequest:
    """Requests a worker (and the flow processes it starts) may make: a method and a path
    pattern in IAM's `execute-api` resource syntax (`*` matches any characters, `/` included)."""

    method: str
    path: str
    why: str


#: Everything a worker host does: take and run flow runs, report them, fetch code. Not:
#: creating, changing or deleting deployments and pools, uploading bundles, cancelling or
#: retrying runs, listing everything - those are operators' requests.
WORKER_REQUESTS: tuple[WorkerRequest, ...] = (
    WorkerRequest("GET", "/health", "the CLI and worker check the control plane is up"),
    WorkerRequest("GET", "/pools/*", "the worker reads its pool (queue URL, settings)"),
    WorkerRequest("POST", "/pools/*/workers", "worker presence heartbeats"),
    WorkerRequest("POST", "/flow-runs/*/claim", "claim a run taken from the queue"),
    WorkerRequest("POST", "/flow-runs/*/heartbeat", "heartbeat a claimed run"),
    WorkerRequest("POST", "/flow-runs/*/state", "report the run's transitions"),
    WorkerRequest("POST", "/flow-runs/*/events", "report task runs and log lines"),
    WorkerRequest("GET", "/flow-runs/*", "read a run (and subflows' runs)"),
    WorkerRequest("POST", "/flow-runs", "subflows create their own flow runs"),
    WorkerRequest("GET", "/deployments/*", "read the deployment to run (entrypoint, source)"),
    WorkerRequest("POST", "/deployments/*/runs", "run_deployment() inside a flow"),
    WorkerRequest("GET", "/bundles/*", "where to download a code bundle"),
)
