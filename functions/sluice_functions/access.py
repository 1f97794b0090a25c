"""Who may call which API route: operators, the workers of one pool, and flow processes.

One table, read by both ways of enforcing it: the CDK construct turns it into IAM policies
(`execute-api:Invoke` on exact method and path, one policy per pool), and the embedded server
checks its tokens against it. Paths use IAM's resource syntax: `*` matches any characters, `/`
included, so `/pools/etl/flow-runs/*` covers `/pools/etl/flow-runs/<id>/state` but never another
pool's paths (the pool name is followed by a literal `/`).

* **Operators** (people, CI) may call every route.
* **Workers of pool P** may call `WORKER_ROUTES` with P in the path: take, renew and report runs
  of P, read P's deployments and bundles. The service answers 404 for a run, deployment or
  bundle that is not P's, whatever the caller's credentials.
* **Flow processes** of a run of pool P may call the `flow_process` subset: report their run and
  its subflows (every write also needs the attempt's lease), and create subflow runs.
* Deleting runs and pools, pausing pools and resolving run references are operator actions
  (`OPERATOR_ONLY_ROUTES`).
* Triggering a deployment (`run_deployment` in a flow) is an operator action; a worker or flow
  gets it only through an explicit grant for the deployments it names (`trigger_routes`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cache


class Principal(enum.StrEnum):
    """The kinds of caller the API tells apart."""

    OPERATOR = "operator"
    WORKER = "worker"
    FLOW_PROCESS = "flow-process"


@dataclass(frozen=True)
class RouteAccess:
    """One request a non-operator principal may make: method and path (IAM syntax, `{pool}`
    stands for the caller's own pool), and why it needs it."""

    method: str
    path: str
    why: str
    #: Flow processes (not only their worker) may make it.
    flow_process: bool = False

    def for_pool(self, pool: str) -> str:
        return self.path.replace("{pool}", pool)


#: `GET /health` needs no particular right: every principal may check the API is up.
HEALTH = RouteAccess("GET", "/health", "check the control plane is up", flow_process=True)

#: Every request a worker host makes, each under its own pool's path. Not here: creating,
#: changing or deleting deployments and pools, uploading bundles, cancelling, retrying,
#: backfilling or triggering runs, listing or reading runs of other pools, reading logs.
WORKER_ROUTES: tuple[RouteAccess, ...] = (
    HEALTH,
    RouteAccess("GET", "/pools/{pool}", "read its pool (queue URL, settings)"),
    RouteAccess("POST", "/pools/{pool}/workers", "worker presence heartbeats"),
    RouteAccess("POST", "/pools/{pool}/workers/*/heartbeat",
                "renew the leases of all its runs at once (per-worker heartbeat)"),
    RouteAccess("POST", "/pools/{pool}/flow-runs/*/claim", "claim a run taken from the queue"),
    RouteAccess("POST", "/pools/{pool}/flow-runs/*/heartbeat",
                "renew the lease of a claimed run (flow processes: of the subflows they run)",
                flow_process=True),
    RouteAccess("POST", "/pools/{pool}/flow-runs/*/state", "report the run's transitions",
                flow_process=True),
    RouteAccess("POST", "/pools/{pool}/flow-runs/*/events", "report task runs and log lines",
                flow_process=True),
    RouteAccess("GET", "/pools/{pool}/flow-runs/*", "read its run and subflows' runs",
                flow_process=True),
    RouteAccess("POST", "/pools/{pool}/flow-runs", "subflows create their own flow runs",
                flow_process=True),
    RouteAccess("GET", "/pools/{pool}/deployments/*", "read the deployment to run"),
    RouteAccess("GET", "/pools/{pool}/bundles/*", "where to download the deployment's code"),
    RouteAccess("POST", "/pools/{pool}/events",
                "user code emits events about its run (sluice.emit_event)", flow_process=True),
)


#: Operator actions that sit next to worker routes (same paths, other methods) or that a
#: worker might be expected to need: listed so that a test checks no worker or flow-process
#: grant ever covers them (`operator_only_requests`). Every route not in `WORKER_ROUTES` is
#: operator-only already; these are the ones worth a reminder.
OPERATOR_ONLY_ROUTES: tuple[RouteAccess, ...] = (
    RouteAccess("GET", "/flow-runs/resolve", "find a run by id prefix or suffix, or by name"),
    RouteAccess("DELETE", "/flow-runs/*", "delete a finished run, its history and logs"),
    RouteAccess("POST", "/flow-runs/*/suspend", "suspend a run (voids its attempt's lease)"),
    RouteAccess("POST", "/flow-runs/*/resume", "resume a suspended run (queues a new attempt)"),
    RouteAccess("PATCH", "/pools/{pool}", "pause or resume a pool (its claims)"),
    RouteAccess("DELETE", "/pools/{pool}", "delete a pool with its queues"),
    RouteAccess("GET", "/stats/flow-runs", "the console's counts of every pool's runs"),
    RouteAccess("GET", "/stats/deployments", "the console's view of every deployment"),
    RouteAccess("GET", "/events", "read the event log (sluice events ls|tail)"),
    RouteAccess("POST", "/events", "emit events under any name, sluice.* included"),
    RouteAccess("POST", "/automations", "create an automation (it acts with the control "
                "plane's rights)"),
    RouteAccess("PATCH", "/automations/*", "pause or resume an automation"),
    RouteAccess("DELETE", "/automations/*", "delete an automation"),
)


def operator_only_requests(pool: str) -> list[tuple[str, str]]:
    """(method, path) of `OPERATOR_ONLY_ROUTES` for `pool` (`*` as a run id)."""
    return [(route.method, route.for_pool(pool)) for route in OPERATOR_ONLY_ROUTES]


def worker_requests(pool: str) -> list[tuple[str, str]]:
    """(method, path) of every request a worker of `pool` may make."""
    return [(route.method, route.for_pool(pool)) for route in WORKER_ROUTES]


def flow_process_requests(pool: str) -> list[tuple[str, str]]:
    """(method, path) of every request a flow process of a run of `pool` may make."""
    return [(route.method, route.for_pool(pool)) for route in WORKER_ROUTES
            if route.flow_process]


def trigger_requests(deployment: str) -> list[tuple[str, str]]:
    """(method, path) a grant to trigger `deployment` ("flow/name") adds: start a run and watch
    that deployment's runs (what `run_deployment` calls)."""
    flow_name, _, name = deployment.partition("/")
    if not flow_name or not name or "/" in name or "*" in deployment:
        raise ValueError(f"a trigger grant names one deployment as 'flow/name', got "
                         f"{deployment!r}")
    return [("POST", f"/deployments/{flow_name}/{name}/runs"),
            ("GET", f"/deployments/{flow_name}/{name}/runs/*")]


@cache
def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part)
                              for part in re.split(r"(\*)", path)) + r"\Z")


def matches(allowed: list[tuple[str, str]], method: str, path: str) -> bool:
    """Whether `method path` is one of `allowed`, with IAM's wildcard semantics."""
    return any(method == allowed_method and _pattern(allowed_path).match(path)
               for allowed_method, allowed_path in allowed)
