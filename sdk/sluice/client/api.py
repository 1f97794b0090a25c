"""`SluiceClient`: a typed method for every route of the control-plane API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from ..models import (
    BackfillRequest,
    BackfillSummary,
    BundleLocation,
    BundleUploadRequest,
    Worker,
    WorkerHeartbeat,
    WorkerLeaseAnswer,
    WorkerLeaseHeartbeat,
    ClaimResponse,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    DeploymentUpdate,
    EmitEventsRequest,
    EventDraft,
    EventsAccepted,
    EventsEmitted,
    EventsBatch,
    FlowRun,
    FlowRunCreate,
    HeartbeatResponse,
    LogRecord,
    Page,
    Pool,
    PoolCreate,
    PoolUpdate,
    SetStateResponse,
    SluiceEvent,
    State,
    StateType,
    TaskRun,
)
from ..profiles import Connection
from .automation_methods import AutomationMethods
from .run_control_methods import RunControlMethods
from .keepalive import KeepAlivePoster
from .transport import RETRYABLE_STATUSES, ThrottleGate, build_clients, send

#: Tries of one per-worker heartbeat (retried fast on 429/5xx within its timeout).
LEASE_ATTEMPTS = 3


def _q(value: str) -> str:
    return quote(value, safe="")


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


class SluiceClient(AutomationMethods, RunControlMethods):
    """Talks to one control plane (embedded or AWS). Errors are raised as `sluice.exceptions`
    types; connection errors, 429 and 5xx are retried with backoff and jitter first."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0,
                 attempts: int = 4, http: httpx.Client | None = None,
                 pool: str | None = None) -> None:
        """`pool`: the client of a worker of that pool (or of its flow processes): runs,
        deployments and bundles are reached through the pool's routes (`/pools/{pool}/...`),
        the only ones its credentials allow (see `sluice_functions.access`)."""
        self.connection = connection
        self.attempts = attempts
        self.pool = pool
        #: Posts events batches (`keepalive`); None with a given `http` (tests' fakes) or a
        #: proxy, and then batches go through `http` like every other call.
        self.poster: KeepAlivePoster | None = None
        if http is None:
            http, self.poster = build_clients(connection, timeout)
        self.http = http
        #: Shared by this client's calls: after a 429 the others wait, lease renewals go first.
        self.gate = ThrottleGate()
        self._scope = f"/pools/{_q(pool)}" if pool else ""

    def close(self) -> None:
        self.http.close()
        if self.poster is not None:
            self.poster.close()

    def __enter__(self) -> SluiceClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
              params: dict[str, Any] | None = None, attempts: int | None = None,
              timeout: float | None = None,
              retry_statuses: frozenset[int] = RETRYABLE_STATUSES, urgent: bool = False,
              poster: KeepAlivePoster | None = None) -> Any:
        """`urgent`: a lease renewal, which skips the wait other calls keep after a 429.
        `poster`: sends a POST of `content` (`keepalive`)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = send(self.http, method, path, json=json, content=content, params=clean,
                        attempts=attempts or self.attempts, timeout=timeout,
                        retry_statuses=retry_statuses, gate=getattr(self, "gate", None),
                        urgent=urgent, poster=poster)
        return response.json() if response.content else None

    # -- health --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health", attempts=1)

    # -- flow runs -----------------------------------------------------------------------------
    def create_flow_run(self, request: FlowRunCreate) -> FlowRun:
        return FlowRun.model_validate(
            self._call("POST", f"{self._scope}/flow-runs", json=_dump(request)))

    def _run_path(self, flow_run_id: str) -> str:
        return f"{self._scope}/flow-runs/{_q(flow_run_id)}"

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        return FlowRun.model_validate(self._call("GET", self._run_path(flow_run_id)))

    def resolve_flow_run(self, ref: str) -> FlowRun:
        """The run `ref` names: its full id, a unique id prefix (4+ characters), a unique id
        suffix (6+ characters: tables show the last 8 of an id) or its name. Raises `NotFound`
        when nothing matches and `Conflict` (listing up to 5 candidates in its message and in
        `details["candidates"]`) when several runs do."""
        return FlowRun.model_validate(
            self._call("GET", "/flow-runs/resolve", params={"ref": ref}))

    def delete_flow_run(self, flow_run_id: str) -> None:
        """Delete a finished run (Completed, Failed, Crashed or Cancelled) with its state
        history, task runs and logs. Raises `Conflict` for a run still scheduled or active
        (cancel it first) and `NotFound` for an unknown (or already deleted) run."""
        self._call("DELETE", f"/flow-runs/{_q(flow_run_id)}")

    def list_flow_runs(self, *, flow_name: str | None = None, deployment_id: str | None = None,
                       state_type: StateType | str | None = None,
                       scheduled_after: datetime | None = None,
                       scheduled_before: datetime | None = None, limit: int = 50,
                       cursor: str | None = None, tags: list[str] | None = None,
                       parent_flow_run_id: str | None = None) -> Page[FlowRun]:
        """A page of runs, newest scheduled first; `tags`: runs having all of them;
        `parent_flow_run_id`: the subflows of that run."""
        params = {"flow_name": flow_name, "deployment_id": deployment_id,
                  "state_type": getattr(state_type, "value", state_type),
                  "scheduled_after": scheduled_after.isoformat() if scheduled_after else None,
                  "scheduled_before": scheduled_before.isoformat() if scheduled_before else None,
                  "limit": limit, "cursor": cursor, "tag": list(tags) if tags else None,
                  "parent_flow_run_id": parent_flow_run_id}
        return Page[FlowRun].model_validate(self._call("GET", "/flow-runs", params=params))

    def iter_flow_runs(self, **filters: Any) -> Iterator[FlowRun]:
        cursor = None
        while True:
            page = self.list_flow_runs(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def set_flow_run_state(self, flow_run_id: str, state: State, transition_id: str,
                           lease: str | None = None) -> SetStateResponse:
        body = {"state": _dump(state), "transition_id": transition_id, "lease": lease}
        return SetStateResponse.model_validate(
            self._call("POST", f"{self._run_path(flow_run_id)}/state",
                       json={k: v for k, v in body.items() if v is not None}))

    def claim_flow_run(self, flow_run_id: str, worker: str,
                       attempt: int | None = None, claim_id: str | None = None,
                       requeue: bool = False, session: str | None = None,
                       start: bool = False, with_deployment: bool = False) -> ClaimResponse:
        """Claim a queued run; a run waiting for a concurrency slot raises `Throttled` at once
        (not retried here: the queue brings the run back; see `ClaimRequest.requeue`).
        `session`: the worker session whose per-worker heartbeats will renew the lease.
        `start`/`with_deployment`: see `ClaimRequest` (older control planes refuse them)."""
        body: dict[str, Any] = {"worker": worker}
        if start:
            body["start"] = True
        if with_deployment:
            body["with_deployment"] = True
        if session is not None:
            body["session"] = session
        if attempt is not None:
            body["attempt"] = attempt
        if claim_id is not None:
            body["claim_id"] = claim_id
        if requeue:
            body["requeue"] = True
        return ClaimResponse.model_validate(
            self._call("POST", f"{self._run_path(flow_run_id)}/claim", json=body,
                       retry_statuses=RETRYABLE_STATUSES - {429}))

    def heartbeat(self, flow_run_id: str, lease: str, *, attempts: int | None = None,
                  timeout: float | None = None) -> HeartbeatResponse:
        """`attempts`/`timeout`: a worker beating often gives each beat one short try (the next
        beat is the retry), so a hung connection cannot keep it from hearing a cancel or 409."""
        return HeartbeatResponse.model_validate(
            self._call("POST", f"{self._run_path(flow_run_id)}/heartbeat", json={"lease": lease},
                       attempts=attempts, timeout=timeout, urgent=True))

    def worker_lease_heartbeat(self, pool: str, worker: str, beat: WorkerLeaseHeartbeat, *,
                               timeout: float | None = None) -> WorkerLeaseAnswer:
        """Renew the leases of every run a worker session holds (and say the worker is alive).
        Lease renewals go first under throttling (`transport.ThrottleGate`); a short retry
        within `timeout`, since the next beat is the real retry."""
        return WorkerLeaseAnswer.model_validate(
            self._call("POST", f"/pools/{_q(pool)}/workers/{_q(worker)}/heartbeat",
                       json=_dump(beat), attempts=LEASE_ATTEMPTS, timeout=timeout,
                       urgent=True))

    def cancel_flow_run(self, flow_run_id: str, message: str | None = None
                        ) -> SetStateResponse:
        body = {"message": message} if message else {}
        return SetStateResponse.model_validate(
            self._call("POST", f"/flow-runs/{_q(flow_run_id)}/cancel", json=body))

    def retry_flow_run(self, flow_run_id: str) -> SetStateResponse:
        return SetStateResponse.model_validate(
            self._call("POST", f"/flow-runs/{_q(flow_run_id)}/retry", json={}))

    def flow_run_history(self, flow_run_id: str) -> list[State]:
        data = self._call("GET", f"/flow-runs/{_q(flow_run_id)}/history")
        items = data["items"] if isinstance(data, dict) else data
        return [State.model_validate(s) for s in items]

    # -- events, task runs, logs -----------------------------------------------------------------
    def send_events(self, flow_run_id: str, batch: EventsBatch | bytes,
                    attempts: int | None = None) -> EventsAccepted:
        """Send task runs and logs of a run; `batch` may be raw JSON bytes built by the
        reporter (it serializes each record once)."""
        content = batch if isinstance(batch, bytes) else batch.model_dump_json().encode()
        return EventsAccepted.model_validate(
            self._call("POST", f"{self._run_path(flow_run_id)}/events", content=content,
                       attempts=attempts, poster=getattr(self, "poster", None)))

    def list_task_runs(self, flow_run_id: str, *, limit: int = 200,
                       cursor: str | None = None) -> Page[TaskRun]:
        return Page[TaskRun].model_validate(
            self._call("GET", f"/flow-runs/{_q(flow_run_id)}/task-runs",
                       params={"limit": limit, "cursor": cursor}))

    def all_task_runs(self, flow_run_id: str) -> list[TaskRun]:
        runs, cursor = [], None
        while True:
            page = self.list_task_runs(flow_run_id, cursor=cursor)
            runs.extend(page.items)
            if page.next_cursor is None:
                return runs
            cursor = page.next_cursor

    def read_logs(self, flow_run_id: str, *, cursor: str | None = None,
                  limit: int = 200) -> Page[LogRecord]:
        return Page[LogRecord].model_validate(
            self._call("GET", f"/flow-runs/{_q(flow_run_id)}/logs",
                       params={"cursor": cursor, "limit": limit}))

    # -- deployments -----------------------------------------------------------------------------
    def create_deployment(self, request: DeploymentCreate) -> Deployment:
        return Deployment.model_validate(self._call("POST", "/deployments", json=_dump(request)))

    def list_deployments(self, *, flow_name: str | None = None, limit: int = 200,
                         cursor: str | None = None) -> Page[Deployment]:
        return Page[Deployment].model_validate(self._call(
            "GET", "/deployments", params={"flow_name": flow_name, "limit": limit,
                                           "cursor": cursor}))

    @staticmethod
    def _deployment_path(ref: str) -> str:
        # "flow/deployment" names address a deployment as two path segments.
        return "/deployments/" + "/".join(_q(part) for part in ref.split("/", 1))

    def get_deployment(self, ref: str) -> Deployment:
        """The deployment `ref` ("flow/name" or id; a pool-scoped client: an id of its pool's)."""
        path = (f"{self._scope}/deployments/{_q(ref)}" if self.pool
                else self._deployment_path(ref))
        return Deployment.model_validate(self._call("GET", path))

    def update_deployment(self, ref: str, update: DeploymentUpdate) -> Deployment:
        return Deployment.model_validate(
            self._call("PATCH", self._deployment_path(ref),
                       json=update.model_dump(mode="json", exclude_unset=True)))

    def delete_deployment(self, ref: str) -> None:
        self._call("DELETE", self._deployment_path(ref))

    def run_deployment(self, ref: str, request: DeploymentRunRequest | None = None) -> FlowRun:
        body = _dump(request or DeploymentRunRequest())
        return FlowRun.model_validate(
            self._call("POST", f"{self._deployment_path(ref)}/runs", json=body))

    def get_deployment_run(self, ref: str, flow_run_id: str) -> FlowRun:
        """A run of the deployment `ref`, as `run_deployment` watches it: through the
        deployment's route when `ref` is "flow/name" (a grant to trigger the deployment covers
        it), else through the run's own route (operators)."""
        if "/" in ref:
            return FlowRun.model_validate(self._call(
                "GET", f"{self._deployment_path(ref)}/runs/{_q(flow_run_id)}"))
        return FlowRun.model_validate(self._call("GET", f"/flow-runs/{_q(flow_run_id)}"))

    # -- bundles and workers ---------------------------------------------------------------------
    def request_bundle_upload(self, request: BundleUploadRequest) -> BundleLocation:
        return BundleLocation.model_validate(
            self._call("POST", "/bundles", json=_dump(request)))

    def put_bundle(self, url: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Upload to the URL the control plane gave (presigned S3, or the embedded server),
        with the headers it pinned (`BundleLocation.upload_headers`: in AWS the signed size
        and checksum, so a URL only ever takes the bundle it was made for)."""
        sent = {"content-type": "application/zip", **{k.lower(): v for k, v in
                                                       (headers or {}).items()}}
        # httpx sets content-length from the body; a pinned one must agree with it.
        pinned_length = sent.pop("content-length", None)
        if pinned_length is not None and pinned_length != str(len(data)):
            from ..exceptions import ConfigurationError

            raise ConfigurationError(
                f"the upload URL takes {pinned_length} bytes but the bundle has {len(data)}: "
                "request the upload again for these bytes")
        response = self._raw().put(url, content=data, headers=sent)
        if response.status_code >= 300:
            from .transport import error_from_response

            raise error_from_response(response)

    def download_bundle(self, sha256: str) -> bytes:
        location = BundleLocation.model_validate(
            self._call("GET", f"{self._scope}/bundles/{_q(sha256)}"))
        assert location.download_url is not None
        response = self._raw().get(location.download_url)
        if response.status_code >= 300:
            from .transport import error_from_response

            raise error_from_response(response)
        return response.content

    def _raw(self) -> httpx.Client:
        """A client for presigned URLs: no SigV4 (the URL carries its signature), but the
        embedded server's token when it has one."""
        headers = {}
        if self.connection.api_token:
            headers["authorization"] = f"Bearer {self.connection.api_token}"
        from .transport import tls_verify

        return httpx.Client(timeout=120, headers=headers, verify=tls_verify(self.connection))

    def worker_heartbeat(self, pool: str, heartbeat: WorkerHeartbeat) -> Worker:
        return Worker.model_validate(
            self._call("POST", f"/pools/{_q(pool)}/workers", json=_dump(heartbeat), attempts=1))

    def backfill_deployment(self, ref: str, request: BackfillRequest) -> BackfillSummary:
        return BackfillSummary.model_validate(
            self._call("POST", f"{self._deployment_path(ref)}/backfill", json=_dump(request)))

    # -- pools -----------------------------------------------------------------------------------
    def create_pool(self, request: PoolCreate) -> Pool:
        return Pool.model_validate(self._call("POST", "/pools", json=_dump(request)))

    def list_pools(self) -> list[Pool]:
        data = self._call("GET", "/pools")
        items = data["items"] if isinstance(data, dict) else data
        return [Pool.model_validate(p) for p in items]

    def get_pool(self, name: str) -> Pool:
        return Pool.model_validate(self._call("GET", f"/pools/{_q(name)}"))

    def update_pool(self, name: str, *, paused: bool | None = None) -> Pool:
        """Change a pool's settings and return it (with live figures). `paused=True` pauses
        it: workers' claims of its runs are refused and the runs wait in Scheduled; runs
        already claimed go on. `paused=False` resumes it. Raises `NotFound`."""
        update = PoolUpdate(paused=paused)
        return Pool.model_validate(self._call(
            "PATCH", f"/pools/{_q(name)}", json=update.model_dump(mode="json",
                                                                   exclude_none=True)))

    def delete_pool(self, name: str, *, force: bool = False) -> None:
        """Delete a pool with its queue and dead-letter queue. Raises `Conflict` while
        deployments use it or runs of it are unfinished; with `force`, only while runs of it
        are active (its scheduled runs are cancelled). Raises `NotFound` for an unknown pool."""
        self._call("DELETE", f"/pools/{_q(name)}", params={"force": "true" if force else None})

    # -- console overviews ---------------------------------------------------------------------
    def flow_run_stats(self, *, since: datetime | None = None, until: datetime | None = None,
                       bucket_seconds: int = 3600, flow_name: str | None = None,
                       deployment_id: str | None = None, pool: str | None = None
                       ) -> dict[str, Any]:
        """Runs per scheduled-time bucket and state type over [since, until) (default: the last
        24 hours), counted by the control plane: `{"since", "until", "bucket_seconds",
        "buckets": [{"start", "counts": {state type: n}}], "totals", "late", "truncated"}`.
        Raises `ValidationError` for a bucket size not offered or a window too long."""
        params = {"since": since.isoformat() if since else None,
                  "until": until.isoformat() if until else None,
                  "bucket_seconds": bucket_seconds, "flow_name": flow_name,
                  "deployment_id": deployment_id, "pool": pool}
        return self._call("GET", "/stats/flow-runs", params=params)

    # -- events --------------------------------------------------------------------------------
    def list_events(self, *, since: datetime | None = None, until: datetime | None = None,
                    names: list[str] | None = None, resource_id: str | None = None,
                    limit: int = 100, cursor: str | None = None) -> Page[SluiceEvent]:
        """Sluice events, newest first; with `since`, oldest first from it (to tail). `names`:
        name prefixes (any of them); `resource_id`: events about or related to that id."""
        params = {"since": since.isoformat() if since else None,
                  "until": until.isoformat() if until else None,
                  "name": list(names) if names else None, "resource_id": resource_id,
                  "limit": limit, "cursor": cursor}
        return Page[SluiceEvent].model_validate(self._call("GET", "/events", params=params))

    def emit_events(self, events: list[EventDraft]) -> int:
        """Record events (a pool-scoped client: about runs of its pool, names outside
        `sluice.`); returns how many were accepted. Give each an `id` to make a retry safe."""
        body = EmitEventsRequest(events=events)
        answer = self._call("POST", f"{self._scope}/events", json=_dump(body))
        return EventsEmitted.model_validate(answer).accepted

    def deployment_stats(self) -> list[dict[str, Any]]:
        """Every deployment with its schedules in words, next run times and recent runs (what
        the console's deployments page shows)."""
        return self._call("GET", "/stats/deployments")

