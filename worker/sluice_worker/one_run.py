"""One flow run, start to end, without a queue of its own: what a Lambda pool's function and a
Fargate pool's task do with the run they were handed.

`run_one` drives the worker's own `RunSupervisor` (claim with a lease, fetch the code, run the
flow in a subprocess, heartbeat, fence, honour cancel, report the end), so every pool kind
follows one protocol. The supervisor expects a worker and an SQS message: `_OneRunHost` plays
the worker for exactly one run, and the message is built from the arguments. Nothing here calls
SQS: what the supervisor would do to the message (delete it, or let it come back) is recorded
and returned, for the caller's event source (a Lambda batch) to act on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .supervisor import RunSettings, RunSupervisor

log = logging.getLogger("sluice.worker")

#: The state message of a run stopped at a deadline when the caller names none.
DEFAULT_DEADLINE_MESSAGE = "stopped at its deadline before it ended"


@dataclass(frozen=True)
class OneRunOutcome:
    """How `run_one` ended."""

    flow_run_id: str
    #: False: the run was not ours to run (already claimed, ended, unknown) or its claim was
    #: deferred (`retry`).
    claimed: bool
    #: The run's state type and name when `run_one` returned (None if not claimed).
    state_type: str | None
    state_name: str | None
    #: One line for logs.
    reason: str
    #: The claim was deferred (a full concurrency slot, an unreachable control plane) without a
    #: fresh message for the run: the caller's message must come back later (a Lambda batch
    #: reports it failed). False when the message may go (done, requeued, not ours).
    retry: bool = False


class _MessageDisposition:
    """Plays the pool queue for `RunSupervisor`: records whether it deleted the message or left
    it to come back, instead of calling SQS."""

    def __init__(self) -> None:
        self.deleted = False
        self.comes_back = False

    def delete(self, receipt: str) -> None:
        self.deleted = True

    def change_visibility(self, receipt: str, seconds: int) -> None:
        # Heartbeats extend visibility too; only a message never deleted comes back.
        self.comes_back = True


class _NoStandby:
    """No flow process started ahead of time: one run per call."""

    def take(self, python: str, env: dict[str, str], cwd: str) -> None:
        return None


class _HeldLeaseClient:
    """The client, with `claim_flow_run` answered for a run whose lease the caller already holds
    (a Fargate task started by its dispatcher): the lease is renewed instead of claimed, so the
    answer carries the normal lease terms (ending the dispatcher's start-up grace)."""

    def __init__(self, client: Any, lease: str | None, attempt: int | None) -> None:
        self._client, self._lease, self._attempt = client, lease, attempt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def claim_flow_run(self, flow_run_id: str, worker: str, attempt: int | None = None,
                       **options: Any) -> Any:
        if self._lease is None:
            return self._client.claim_flow_run(flow_run_id, worker, attempt=self._attempt,
                                               **options)
        from sluice.models import ClaimResponse

        beat = self._client.heartbeat(flow_run_id, self._lease)  # StaleLease: not ours
        if not beat.lease_seconds:
            from sluice.exceptions import Conflict

            raise Conflict(f"flow run {flow_run_id} is no longer running under this lease "
                           f"({beat.state.name})", details={"flow_run_id": flow_run_id})
        return ClaimResponse(lease=self._lease, flow_run=self._client.get_flow_run(flow_run_id),
                             lease_expires_at=beat.lease_expires_at,
                             lease_seconds=beat.lease_seconds,
                             heartbeat_interval_seconds=beat.heartbeat_interval_seconds)


class _OneRunHost:
    """Plays the worker of `RunSupervisor` for one run (see the module docstring)."""

    requeue_supported = True
    #: No per-worker heartbeat session: the run heartbeats on its own (the per-run route).
    leases = None

    def __init__(self, client: Any, *, pool: str, name: str, code: Any, reporter: Any,
                 settings: RunSettings) -> None:
        self.client, self.pool, self.name = client, pool, name
        self.code, self.reporter, self.run_settings = code, reporter, settings
        self.queue = _MessageDisposition()
        self.standby = _NoStandby()
        #: `time.monotonic()` when the flow process started (None: it never did).
        self.started_at: float | None = None

    def echo(self, text: str) -> None:
        log.info("%s", text)

    def echo_output(self, flow_run_id: str, stream: str, line: str) -> None:
        log.debug("[%s %s] %s", flow_run_id[-6:], stream, line)

    def take_message(self, message_id: str, supervisor: Any) -> bool:
        return True  # one message, one supervisor

    def release_message(self, message_id: str, supervisor: Any) -> None:
        pass

    def on_started(self, supervisor: Any) -> None:
        self.started_at = time.monotonic()


def run_one(*, client: Any, pool: str, flow_run_id: str, worker_name: str,
            attempt: int | None = None, claim_id: str | None = None, lease: str | None = None,
            deadline: float | None = None, deadline_message: str | None = None,
            code_cache_dir: str | None = None,
            settings: RunSettings | None = None) -> OneRunOutcome:
    """Run `flow_run_id` of `pool` to its end as `worker_name` and say how it went.

    Claims the run (`claim_id` names the claim: a repeat gets the same lease) unless `lease` is
    given (then that lease is held and renewed), fetches its code into `code_cache_dir` (default
    the worker's cache), runs the flow in a subprocess, heartbeats on the per-run route, stops
    it gracefully on cancel (Cancelled) and at once when the lease is lost (nothing reported),
    fences itself at its lease deadline, and reports the final state if the flow process did
    not. At `deadline` (a `time.monotonic()` value) the flow process is stopped (SIGTERM, then
    SIGKILL after `settings.cancel_grace`) and the run ends TimedOut with `deadline_message`."""
    from sluice.client.reporter import HttpReporter
    from sluice.models import RunMessage

    from .sources import CodeCache

    settings = settings or RunSettings()
    code = CodeCache(Path(code_cache_dir) if code_cache_dir else _default_cache_dir(),
                     download_bundle=getattr(client, "download_bundle", None))
    reporter = HttpReporter(client)
    host = _OneRunHost(_HeldLeaseClient(client, lease, attempt), pool=pool, name=worker_name,
                       code=code, reporter=reporter, settings=settings)
    body = RunMessage(flow_run_id=flow_run_id, pool=pool, attempt=attempt or 0)
    message = {"MessageId": claim_id, "ReceiptHandle": "run-one",
               "Body": body.model_dump_json()}
    supervisor = RunSupervisor(host, message)
    supervisor.deadline_message = deadline_message or DEFAULT_DEADLINE_MESSAGE
    done = threading.Event()
    timer = None
    if deadline is not None:
        timer = threading.Thread(target=_stop_at, args=(deadline, supervisor, done),
                                 daemon=True, name="sluice-run-deadline")
        timer.start()
    try:
        supervisor.run()
    finally:
        done.set()
        reporter.close(timeout=10)
    return _outcome(flow_run_id, supervisor, host, client)


def _stop_at(deadline: float, supervisor: RunSupervisor, done: threading.Event) -> None:
    if not done.wait(max(0.0, deadline - time.monotonic())):
        supervisor.request_stop("deadline")


def _default_cache_dir() -> Path:
    from sluice.settings import get_settings

    return get_settings().home / "worker"


def _outcome(flow_run_id: str, supervisor: RunSupervisor, host: _OneRunHost,
             client: Any) -> OneRunOutcome:
    if supervisor.lease is None:
        retry = host.queue.comes_back and not host.queue.deleted
        reason = ("the claim was deferred; the message comes back later" if retry else
                  "not ours to run (already claimed, ended, unknown, or requeued)")
        return OneRunOutcome(flow_run_id, False, None, None, reason, retry=retry)
    try:
        state = client.get_flow_run(flow_run_id).state
        state_type, state_name = state.type.value, state.name
    except Exception as exc:  # noqa: BLE001 - the run was carried through; only the read failed
        log.warning("could not read the end state of %s: %s", flow_run_id, exc)
        state_type = state_name = None
    stop = supervisor.stop_reason
    reason = f"ran to {state_name}" + (f" (stopped: {stop})" if stop else "") + \
        ("" if host.started_at is not None else "; the flow process never started")
    return OneRunOutcome(flow_run_id, True, state_type, state_name, reason)
