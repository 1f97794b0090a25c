"""Routes of code bundles (upload and download locations) and worker presence."""

# No `from __future__ import annotations`: see flow_runs.py.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Path

from sluice.models import (
    SHA256_PATTERN,
    BundleLocation,
    BundleUploadRequest,
    Worker,
    WorkerHeartbeat,
)

from ..ports import ControlPlanePorts
from ..service import code
from .parameters import PoolName, documented

Sha256 = Annotated[str, Path(pattern=SHA256_PATTERN, description="SHA-256 of the bundle zip.")]


def register_code_routes(
    app: APIGatewayHttpResolver, *, ports: ControlPlanePorts, clock: Callable[[], datetime]
) -> None:
    """Add `/bundles` and `/pools/{name}/workers`; each calls a use case with `ports`."""

    @app.post("/bundles", tags=["bundles"], responses=documented(200),
              summary="Where to upload a code bundle (or that it is already there)")
    def request_bundle_upload(request: BundleUploadRequest) -> BundleLocation:
        return code.bundle_upload(request, bundles=ports.bundles)

    @app.get("/bundles/<sha256>", tags=["bundles"], responses=documented(200, 404),
             summary="Where a worker downloads a code bundle")
    def bundle_download(sha256: Sha256) -> BundleLocation:
        return code.bundle_download(sha256, bundles=ports.bundles)

    @app.post("/pools/<name>/workers", tags=["pools"], responses=documented(200, 404),
              summary="A worker of the pool is alive (pools show it online)")
    def worker_heartbeat(name: PoolName, heartbeat: WorkerHeartbeat) -> Worker:
        return code.record_worker_heartbeat(name, heartbeat, store=ports.store, now=clock())
