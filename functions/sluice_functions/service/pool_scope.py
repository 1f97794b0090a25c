"""What the workers of one pool may reach: its runs, its deployments, its deployments' bundles.

The pool routes (`/pools/{pool}/...`, see `sluice_functions.access`) hand the use cases a
`PoolScopedStore` instead of the store: every run the use case reads is checked on the read it
makes anyway (no extra request), and a run of another pool is "not found", as if it did not
exist, so a worker learns nothing about other pools' runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.exceptions import Conflict, NotFound, ValidationError
from sluice.models import Deployment, FlowRun, FlowRunCreate

if TYPE_CHECKING:
    from ..ports import RunStore

#: Deployments a bundle check reads at most (a pool's deployments are listed page by page).
MAX_DEPLOYMENTS_SCANNED = 10_000


def _run_not_found(flow_run_id: str) -> NotFound:
    return NotFound(f"flow run {flow_run_id} not found", details={"flow_run_id": flow_run_id})


class PoolScopedStore:
    """`store` as the workers of `pool` see it: `get_flow_run` of a run outside the pool raises
    `NotFound`; every other call goes to `store` unchanged."""

    def __init__(self, store: RunStore, pool: str) -> None:
        self._store = store  # `store_layers.WRAPPED_STORE_ATTRIBUTE`: the recorder is found under it
        self.pool = pool

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        run = self._store.get_flow_run(flow_run_id)
        if not run.reachable_by_pool(self.pool):
            raise _run_not_found(flow_run_id)
        return run

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        run = self._store.get_flow_run_by_idempotency_key(idempotency_key)
        return run if run is not None and run.reachable_by_pool(self.pool) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def deployment_in_pool(ref: str, pool: str, *, store: RunStore) -> Deployment:
    """The deployment `ref` (an id) if it runs in `pool`. Raises `NotFound` otherwise."""
    deployment = store.get_deployment(ref)
    if deployment.pool != pool:
        raise NotFound(f"deployment {ref} not found", details={"deployment": ref})
    return deployment


def check_bundle_in_pool(sha256: str, pool: str, *, store: RunStore) -> None:
    """Raises `NotFound` unless a deployment of `pool` runs the bundle `sha256`: a worker fetches
    only code it may be asked to run. (Code fetches are rare, each worker caches bundles by
    hash, so reading the deployments here costs little.)"""
    cursor: str | None = None
    scanned = 0
    while scanned < MAX_DEPLOYMENTS_SCANNED:
        page = store.list_deployments(limit=200, cursor=cursor)
        for deployment in page.items:
            if deployment.pool == pool and deployment.source.bundle_sha256 == sha256:
                return
        scanned += len(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    raise NotFound(f"bundle {sha256} is not the code of any deployment of pool {pool}",
                   details={"bundle": sha256, "pool": pool})


def subflow_request_in_pool(request: FlowRunCreate, pool: str, *,
                            store: PoolScopedStore) -> None:
    """A flow process of `pool` creates only subflow runs of runs it can reach, and never runs of
    a deployment (that is triggering it: an operator's right, see `access.trigger_requests`).
    Raises `ValidationError` (422) or `NotFound` (a parent outside the pool)."""
    if request.deployment_id is not None:
        raise ValidationError(
            "body.deployment_id: a flow process cannot create runs of a deployment through its "
            "pool's routes; trigger the deployment (`run_deployment`) with a grant for it",
            details=[{"loc": ["body", "deployment_id"], "msg": "not allowed on a pool route"}])
    if request.idempotency_key is not None:
        raise ValidationError(
            "body.idempotency_key: subflow runs created through a pool's routes are idempotent "
            "by their client id; leave idempotency_key out",
            details=[{"loc": ["body", "idempotency_key"], "msg": "not allowed on a pool route"}])
    if request.parent_flow_run_id is None:
        raise ValidationError(
            "body.parent_flow_run_id: runs created through a pool's routes are subflows: name "
            "the parent flow run",
            details=[{"loc": ["body", "parent_flow_run_id"], "msg": "required on a pool route"}])
    store.get_flow_run(request.parent_flow_run_id)
    if request.id is not None:
        _check_resent_subflow(request, store=store)


def _id_taken(flow_run_id: str) -> Conflict:
    return Conflict(f"flow run id {flow_run_id} is taken: create the subflow with another id",
                    details={"flow_run_id": flow_run_id})


def _check_resent_subflow(request: FlowRunCreate, *, store: PoolScopedStore) -> None:
    """A create naming an existing run's id is idempotent only for a resent create of that same
    subflow (same parent, same flow). Any other run with that id, of this pool or another, is
    refused with the same answer, which neither shows it nor tells whether it exists."""
    assert request.id is not None
    try:
        existing = store.get_flow_run(request.id)
    except NotFound:
        # Absent, or another pool's: the create's own conditional write decides, and a
        # collision is answered by `subflow_create_conflict` like the case below.
        return
    if (existing.parent_flow_run_id, existing.flow_name) != (request.parent_flow_run_id,
                                                             request.flow_name):
        raise _id_taken(request.id)


def subflow_create_conflict(request: FlowRunCreate) -> Conflict:
    """The answer to a subflow create that collided with a run it may not see."""
    return _id_taken(request.id or "")


def run_of_deployment(ref: str, flow_run_id: str, *, store: RunStore) -> FlowRun:
    """A run of the deployment `ref` ("flow/name" or id), as `run_deployment` watches the run it
    started (a grant to trigger a deployment covers its runs, no others). Raises `NotFound`."""
    from .deployments import get_deployment
    from .flow_runs import public_view

    deployment = get_deployment(ref, store=store)
    run = store.get_flow_run(flow_run_id)
    if run.deployment_id != deployment.id:
        raise _run_not_found(flow_run_id)
    return public_view(run)
