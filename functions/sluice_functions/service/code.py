"""Use cases of code bundles and worker presence."""

from __future__ import annotations

from datetime import datetime

from sluice.exceptions import BadRequest, NotFound
from sluice.models import BundleLocation, BundleUploadRequest, Worker, WorkerHeartbeat, utcnow

from ..ports import BundleStore, RunStore


def _require(bundles: BundleStore | None) -> BundleStore:
    if bundles is None:
        raise BadRequest("this control plane has no bundle storage; deploy with --source "
                         "local or git, or configure the stack's bundle bucket")
    return bundles


def bundle_upload(request: BundleUploadRequest, *, bundles: BundleStore | None
                  ) -> BundleLocation:
    """Where to upload a bundle; `exists` tells the client it may skip the upload."""
    store = _require(bundles)
    if store.exists(request.sha256):
        return BundleLocation(sha256=request.sha256, exists=True,
                              download_url=store.download_url(request.sha256))
    return BundleLocation(sha256=request.sha256, exists=False,
                          upload_url=store.upload_url(request.sha256, request.size),
                          upload_headers=store.upload_headers(request.sha256, request.size))


def bundle_download(sha256: str, *, bundles: BundleStore | None) -> BundleLocation:
    """Where a worker downloads a bundle. Raises `NotFound` if it was never uploaded."""
    store = _require(bundles)
    if not store.exists(sha256):
        raise NotFound(f"bundle {sha256} was never uploaded; run `sluice deploy` again")
    return BundleLocation(sha256=sha256, exists=True, download_url=store.download_url(sha256))


def record_worker_heartbeat(pool: str, heartbeat: WorkerHeartbeat, *, store: RunStore,
                            now: datetime | None = None) -> Worker:
    """A worker of `pool` is alive. Raises `NotFound` for an unknown pool."""
    store.get_pool(pool)
    return store.upsert_worker(Worker(name=heartbeat.name, pool=pool, host=heartbeat.host,
                                      version=heartbeat.version, slots=heartbeat.slots,
                                      last_seen=now or utcnow(), online=True))
