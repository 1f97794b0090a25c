"""Configuration reads shared by the steps of one use case call (one API request).

A claim consults its run's pool three times (is it paused? its concurrency limit? its kind,
for the first lease's terms) and its deployment up to three times (its limit, the event's
name, the claim's answer); a run created from a deployment reads the deployment by name, then
by id for its defaults, then again for its limit. On DynamoDB each of those is a strongly
consistent GetItem (1 read unit) of an item that does not change within the request.

`RequestReads` wraps the store for one call: `get_pool`, `get_deployment` and
`get_deployment_by_name` read each record at most once, and a deployment read by name also
answers a read of its id (both items are written in one transaction). Everything else,
flow runs included, goes to the store unchanged: a run is decided on and written
compare-and-set, so a run's reads are never memoized here (the use cases pass the run they
already read to the code that writes it instead).

Why this is safe: each of those steps already decided on one read made during the request;
a pause or a new limit written while the request runs is seen by the next claim either way
(the counts of concurrency slots are not memoized and are read fresh, twice). A write of a
pool or deployment through the wrapper forgets what it read.

The wrapper is built by the use case for its own call (`request_reads`), never kept beyond it,
so nothing is cached across requests.
"""

from __future__ import annotations

from typing import Any

from sluice.exceptions import NotFound
from sluice.models import Deployment, Pool


class RequestReads:
    """`store` for one use case call, with its pool and deployment reads memoized."""

    def __init__(self, store: Any) -> None:
        self._store = store  # `store_layers.WRAPPED_STORE_ATTRIBUTE`: the recorder is found under it
        self._pools: dict[str, Pool | NotFound] = {}
        self._deployments: dict[str, Deployment | NotFound] = {}
        self._deployment_ids: dict[tuple[str, str], str | NotFound] = {}

    def get_pool(self, name: str) -> Pool:
        if name not in self._pools:
            self._pools[name] = _read_or_not_found(self._store.get_pool, name)
        return _answer(self._pools[name])

    def get_deployment(self, deployment_id: str) -> Deployment:
        if deployment_id not in self._deployments:
            self._deployments[deployment_id] = _read_or_not_found(
                self._store.get_deployment, deployment_id)
        return _answer(self._deployments[deployment_id])

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        key = (flow_name, name)
        known = self._deployment_ids.get(key)
        if isinstance(known, str):
            return self.get_deployment(known)
        if known is None:
            found = _read_or_not_found(self._store.get_deployment_by_name, flow_name, name)
            if isinstance(found, Deployment):
                self._deployments[found.id] = found
                self._deployment_ids[key] = found.id
            else:
                self._deployment_ids[key] = found
            return _answer(found)
        return _answer(known)

    # Writes of configuration go through, and what was read before them is forgotten.

    def upsert_pool(self, pool: Pool) -> Pool:
        self._forget()
        return self._store.upsert_pool(pool)

    def delete_pool(self, name: str) -> None:
        self._forget()
        self._store.delete_pool(name)

    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        self._forget()
        return self._store.upsert_deployment(deployment)

    def update_deployment(self, deployment: Deployment) -> Deployment:
        self._forget()
        return self._store.update_deployment(deployment)

    def delete_deployment(self, deployment_id: str) -> None:
        self._forget()
        self._store.delete_deployment(deployment_id)

    def _forget(self) -> None:
        self._pools.clear()
        self._deployments.clear()
        self._deployment_ids.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def request_reads(store: Any) -> RequestReads:
    """`store` wrapped for one use case call; a store that already is one (a use case called
    by another within the same request) is returned as it is."""
    return store if isinstance(store, RequestReads) else RequestReads(store)


def _read_or_not_found(read: Any, *args: str) -> Any:
    try:
        return read(*args)
    except NotFound as missing:  # remembered too: the same request asks again
        return missing


def _answer(value: Any) -> Any:
    if isinstance(value, NotFound):
        raise value
    return value
