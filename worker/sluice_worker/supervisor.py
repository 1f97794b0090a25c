"""One run on a worker: claim, fetch code, start the flow process, heartbeat, finish."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from sluice import exceptions as errors
from sluice.client.transport import retry_transient
from sluice.models import Cancelled, Crashed, Failed, RunMessage, TimedOut, new_id

from . import faults
from .execute import EXIT_REPORTED
from .output import OutputPump
from .attempt_lease import AttemptLease
from .processes import kill_run_processes, spawn
from .run_command import flow_process_command
from .sources import CodeUnavailable

log = logging.getLogger("sluice.worker")
#: A message this early is not held in a slot: it goes back to the queue until its time.
MAX_EARLY_WAIT_SECONDS = 5.0
#: How long the worker rides out an unreachable control plane for what a run cannot do without
#: (reading the deployment, reporting how the process ended): as long as the flow process's
#: reporter retries its transitions.
PATIENCE_SECONDS = 120.0
_TRANSIENT = (errors.ServiceUnavailable, errors.Throttled)
#: A run stopped for an expired lease is reported Crashed if the control plane answers soon
#: (else its monitor decides).
EXPIRED_REPORT_PATIENCE_SECONDS = 10.0


@dataclass(frozen=True)
class RunSettings:
    heartbeat_interval: float = 10.0
    #: How long a received message stays invisible between heartbeats (> the interval).
    visibility_timeout: int = 60
    #: After SIGTERM, how long a cancelled run's process gets before SIGKILL.
    cancel_grace: float = 10.0
    #: A claim refused for a full concurrency slot: see the message again after this long.
    busy_retry_seconds: int = 5


class RunSupervisor:
    """Carries one queue message through the run protocol (DESIGN.md, steps 2-5)."""

    def __init__(self, worker: Any, message: dict[str, Any]) -> None:
        self.worker = worker
        self.message = message
        self.receipt = message["ReceiptHandle"]
        self.settings: RunSettings = worker.run_settings
        self.process: subprocess.Popen[bytes] | None = None
        self.flow_run_id: str | None = None
        self._taken = False  # this supervisor holds the message id on its worker
        self.lease: str | None = None
        # "cancel" | "stale" | "expired" | "shutdown" | "deadline"
        self.stop_reason: str | None = None
        #: The attempt's lease: its deadline, renewal period, and the flow process's pipe.
        self.held = AttemptLease(self.settings.heartbeat_interval)
        #: The worker's per-worker heartbeat renews this run's lease (its claim named the
        #: worker's session); else this supervisor heartbeats the run itself.
        self.sessions: Any = None
        #: The session the latest claim request named (None: none).
        self.claim_session: str | None = None
        #: The claim asked to start the run (Running in the claim's write, see `ClaimRequest`).
        self.claim_started = False
        #: The run's deployment as the claim's answer carried it (None: read it separately).
        self.claimed_deployment: Any = None
        #: The message a run stopped at its deadline ends TimedOut with (`request_stop(
        #: "deadline")`, see `one_run`).
        self.deadline_message = "stopped at its deadline"

    def _session(self) -> str | None:
        """The worker session a claim names now, if the worker renews leases per worker."""
        leases = getattr(self.worker, "leases", None)
        return leases.session if leases is not None and leases.active else None

    def _claim(self, body: RunMessage) -> Any:
        worker = self.worker
        session = self.claim_session = self._session()
        starts = self.claim_started = getattr(worker, "claim_starts_supported", False)
        try:
            return worker.client.claim_flow_run(
                body.flow_run_id, worker.name, attempt=body.attempt,
                claim_id=self.message.get("MessageId"), requeue=worker.requeue_supported,
                **({"session": session} if session else {}),
                **({"start": True, "with_deployment": True} if starts else {}))
        except errors.ValidationError as exc:
            if starts and _refuses_field(exc, ("start", "with_deployment")):
                # A control plane older than this worker: claim Pending, read the deployment.
                log.warning("the control plane cannot start runs in their claim; upgrade it")
                worker.claim_starts_supported = False
                return self._claim(body)
            if not (worker.requeue_supported and "requeue" in f"{exc} {exc.details}"):
                raise
            # A control plane older than this worker refuses the field: claim as it expects.
            log.warning("the control plane does not requeue waiting runs; upgrade it")
            worker.requeue_supported = False
            return self._claim(body)

    def _keep_message(self) -> None:
        """While the claim waits out an outage, its message must not show again (a copy would
        carry the same claim id, and get the same lease)."""
        try:
            self.worker.queue.change_visibility(self.receipt, self.settings.visibility_timeout)
        except Exception as exc:  # the queue may be down too; the run guard still holds
            log.debug("extending message %s failed: %s", self.message.get("MessageId"), exc)

    # -- the protocol ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("supervising message %s failed", self.message.get("MessageId"))
        finally:
            if self._taken:
                self.worker.release_message(self.message["MessageId"], self)
            release_code = getattr(self.worker.code, "release", None)
            if release_code is not None:
                release_code(self)  # what this run pinned in the code cache may be evicted
            leases = getattr(self.worker.reporter, "leases", {})
            if self.flow_run_id is not None and self.lease is not None \
                    and leases.get(self.flow_run_id) == self.lease:
                del leases[self.flow_run_id]  # only ours: another attempt may hold the run now
            if self.sessions is not None and self.flow_run_id and self.lease:
                # Its processes are gone: the session stops renewing it.
                self.sessions.release(self.flow_run_id, self.lease)

    def _run(self) -> None:
        worker = self.worker
        try:
            body = RunMessage.model_validate_json(self.message["Body"])
        except (PydanticValidationError, ValueError):
            # Left alone, the message dead-letters after maxReceiveCount: kept for inspection.
            log.error("malformed run message %s: %.200r", self.message.get("MessageId"),
                      self.message.get("Body"))
            worker.queue.change_visibility(self.receipt, self.settings.visibility_timeout)
            return
        message_id = self.message.get("MessageId")
        if message_id is not None and not worker.take_message(message_id, self):
            # A second delivery of a message this worker is handling (SQS may deliver one twice;
            # its claim id would get the same lease). It comes back later and is dropped then.
            log.info("message %s of run %s is already handled here", message_id,
                     body.flow_run_id)
            worker.queue.change_visibility(self.receipt, self.settings.visibility_timeout)
            return
        self._taken = message_id is not None
        self.flow_run_id = body.flow_run_id
        faults.reached("after_receive", body.flow_run_id)
        if not self._wait_until_due(body):
            return
        try:
            # The message id names the claim: a lost answer is retried with the same id and
            # gets the same lease; a second copy of the message gets 409 and is dropped. An
            # unreachable control plane is waited out here, by this worker: a claim may have
            # been written before its answer was lost, and only this worker can pick it up
            # again (another one would find the run held, drop the message, and the run would
            # sit claimed by nobody until the monitor crashed it).
            claim = retry_transient(
                lambda: self.held.renew(lambda: self._claim(body)),
                PATIENCE_SECONDS, what=f"claiming run {body.flow_run_id}",
                retry_on=(errors.ServiceUnavailable,), on_retry=self._keep_message)
        except (errors.Conflict, errors.NotFound) as exc:
            log.info("run %s not claimable (%s); dropping its message", body.flow_run_id, exc)
            worker.queue.delete(self.receipt)
            return
        except (errors.ValidationError, errors.BadRequest) as exc:
            # The message names something that is no run id at all: like a malformed one it is
            # left to dead-letter (kept for inspection), without a traceback per delivery.
            log.error("run message %s names no claimable run (%s): %.200r",
                      self.message.get("MessageId"), exc, self.message.get("Body"))
            worker.queue.change_visibility(self.receipt, self.settings.visibility_timeout)
            return
        except _TRANSIENT as exc:
            if isinstance(exc, errors.Throttled) and (exc.details or {}).get("requeued"):
                # The run waits for a concurrency slot and has a fresh message: this one goes,
                # so waiting never counts deliveries towards the dead-letter queue.
                log.info("run %s waits for a concurrency slot: %s", body.flow_run_id, exc)
                worker.queue.delete(self.receipt)
                return
            log.warning("claim of %s deferred: %s", body.flow_run_id, exc)
            worker.queue.change_visibility(self.receipt, self.settings.busy_retry_seconds)
            return
        self.lease = claim.lease
        worker.reporter.leases[body.flow_run_id] = claim.lease  # the process's output lines
        if self.claim_session is not None and getattr(claim, "lease_seconds", None):
            self.sessions = worker.leases
            self.sessions.hold(body.flow_run_id, claim.lease, self.held, self,
                               session=self.claim_session)
        faults.reached("after_claim", body.flow_run_id)
        flow_run = claim.flow_run if isinstance(claim.flow_run, dict) else dict(claim.flow_run)
        self.claimed_deployment = getattr(claim, "deployment", None)
        worker.echo(f"claimed {flow_run.get('flow_name')}/{flow_run.get('name')} "
                    f"({body.flow_run_id}, attempt {flow_run.get('run_count')})")
        try:
            # Fetching code (a clone, a bundle, a requirements venv) can take a while: the run
            # heartbeats meanwhile, and an API outage is waited out rather than failing it.
            with self._beating():
                command, cwd, env = retry_transient(
                    lambda: self._prepare(flow_run), PATIENCE_SECONDS,
                    what=f"preparing run {body.flow_run_id}")
        except _TRANSIENT:
            # Still no control plane: nothing can be reported. The run stays claimed and
            # silent, so the monitor crashes it (and retries it if allowed).
            worker.queue.delete(self.receipt)
            return
        except (CodeUnavailable, errors.SluiceError) as exc:
            self._report(Failed(f"could not prepare the run: {exc}"))
            worker.queue.delete(self.receipt)
            return
        if self.stop_reason is not None:
            # Cancelled (a Pending run is Cancelled at once), stale, or the worker is stopping.
            if self.stop_reason == "shutdown":
                self._report(Crashed(f"worker {worker.name} shut down before the run started"))
            elif self.stop_reason == "deadline":
                self._report(TimedOut(self.deadline_message))
            elif self.stop_reason == "cancel" and self.claim_started:
                # A started run is Cancelling, not Cancelled: nobody else would end it.
                self._report(Cancelled("cancelled before the run's process started"))
            self.worker.echo(f"run {self.flow_run_id} stopped before it started "
                             f"({self.stop_reason})")
            worker.queue.delete(self.receipt)
            return
        self._execute(command, cwd, env)
        worker.queue.delete(self.receipt)

    @contextlib.contextmanager
    def _beating(self) -> Iterator[None]:
        """Heartbeat in a helper thread while the body runs (before there is a process)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.held.until_next_beat()):
                self._heartbeat()
                if self.held.expired():
                    self.stop_reason = self.stop_reason or "expired"
                    return  # nothing to keep alive: the run will not start

        thread = threading.Thread(target=beat, daemon=True, name="sluice-prepare-beat")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=self.held.beat_timeout + 1)

    def _wait_until_due(self, body: RunMessage) -> bool:
        """Start a run on its second: hold an early message until `scheduled_at`. A message far
        ahead of its time (a clock skew or a resend) goes back to the queue until then."""
        if body.scheduled_at is None:
            return True
        early = (body.scheduled_at - datetime.now(timezone.utc)).total_seconds()
        if early > MAX_EARLY_WAIT_SECONDS:
            self.worker.queue.change_visibility(self.receipt, min(int(early), 43_200))
            return False
        if early > 0:
            time.sleep(early)
        return True

    def _prepare(self, flow_run: dict[str, Any]) -> tuple[list[str], str, dict[str, str]]:
        assert self.flow_run_id is not None and self.lease is not None
        return flow_process_command(self.worker, flow_run, flow_run_id=self.flow_run_id,
                                    lease=self.lease, holder=self,
                                    deployment=self.claimed_deployment)

    def _execute(self, command: list[str], cwd: str, env: dict[str, str]) -> None:
        assert self.flow_run_id is not None
        pump = OutputPump(self.worker.reporter, self.flow_run_id, echo=self.worker.echo_output)
        started = time.monotonic()
        if self.held.expired():
            self.stop_reason = "expired"
            self._conclude(None, pump, 0.0)
            return
        # Its own session and process group, and a pipe that carries the lease's renewals.
        self.process, pipe = self.worker.standby.take(command[0], env, cwd) or \
            spawn(command, env=env, cwd=cwd)
        self.held.attach(pipe)
        pump.follow(self.process.stdout, "stdout")  # type: ignore[arg-type]
        pump.follow(self.process.stderr, "stderr")  # type: ignore[arg-type]
        self.worker.on_started(self)
        next_beat = time.monotonic() + self.held.until_next_beat()
        try:
            while True:
                try:
                    # Short waits: a stop request (cancel, shutdown) is acted on within a
                    # second, and a lease about to expire well before it does.
                    code = self.process.wait(timeout=min(0.5, self.held.interval))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + self.held.until_next_beat()
                if self.held.expired():
                    # No renewal got through in time: stop before the control plane may give
                    # the run to another attempt (lease expiry + margin).
                    self.stop_reason = self.stop_reason or "expired"
                if self.stop_reason is not None:
                    code = self._terminate()
                    break
        finally:
            # Nothing of the run outlives it: its group, and whatever left the group.
            escaped = kill_run_processes(self.process.pid, self.lease)
            self.held.detach()
        if escaped:
            log.warning("run %s: stopped %d process(es) that had left its process group",
                        self.flow_run_id, escaped)
        if self.stop_reason is None and code != EXIT_REPORTED and self.held.expired():
            self.stop_reason = "expired"  # it fenced itself while this worker could not renew
        pump.join()
        self.worker.reporter.flush(timeout=10, flow_run_id=self.flow_run_id)
        elapsed = time.monotonic() - started
        self._conclude(code, pump, elapsed)

    def _heartbeat(self) -> None:
        assert self.flow_run_id is not None and self.lease is not None
        flow_run_id, lease = self.flow_run_id, self.lease
        if self.sessions is not None:
            # The worker's per-worker heartbeat renews the lease and hands over cancel / stop
            # (`worker_leases`); only the message's visibility is this run's own.
            self._extend_visibility()
            return
        try:
            # The lease first (the message's visibility can wait; the lease's deadline cannot).
            # One short try: the next beat is the retry, and a hung connection must not keep
            # the run from hearing a cancel or a 409 for long.
            answer = self.held.renew(lambda: self.worker.client.heartbeat(
                flow_run_id, lease, attempts=1, timeout=self.held.beat_timeout))
        except errors.Conflict:
            self.stop_reason = self.stop_reason or "stale"
            answer = None
        except Exception as exc:  # 5xx, a refusal, the network: the deadline decides
            log.warning("heartbeat of %s failed: %s", flow_run_id, exc)
            answer = None
        if answer is not None and answer.cancel_requested:
            self.stop_reason = self.stop_reason or "cancel"
        self._extend_visibility()

    def _extend_visibility(self) -> None:
        try:
            self.worker.queue.change_visibility(self.receipt, self.settings.visibility_timeout)
        except Exception as exc:  # only delays a redelivery; the lease keeps the run
            log.warning("could not extend message visibility: %s", exc)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    def _terminate(self) -> int:
        """SIGTERM the run's process group, SIGKILL after the grace period; at once SIGKILL when
        the lease is lost or about to be (no grace may outlast it)."""
        assert self.process is not None
        group = self.process.pid
        steps = ((signal.SIGTERM, self.settings.cancel_grace), (signal.SIGKILL, 10.0))
        if self.stop_reason in ("stale", "expired"):
            steps = ((signal.SIGKILL, 10.0),)
        for sig, wait in steps:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                pass
            try:
                return self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return self.process.wait()

    def _conclude(self, code: int | None, pump: OutputPump, elapsed: float) -> None:
        reason = self.stop_reason
        if reason == "stale":
            self.worker.echo(f"run {self.flow_run_id} lost its lease; stopped it")
            return  # another attempt owns the run: nothing of ours may be written
        if reason == "expired":
            self.worker.echo(f"run {self.flow_run_id}: its lease expired unrenewed; stopped it")
            # Until the margin runs out the lease may still be ours: saying so now lets the
            # retry start sooner; refused (409) if the monitor already decided.
            self._report(Crashed(
                f"worker {self.worker.name} could not renew the run's lease before it expired "
                "(the control plane was unreachable) and stopped the run" + _stderr_tail(pump),
                details={"exit_code": code}), patience=EXPIRED_REPORT_PATIENCE_SECONDS)
            return
        if reason == "cancel":
            self._report(Cancelled("cancelled by request; the worker stopped the run"))
        elif reason == "deadline" and code != EXIT_REPORTED:
            self._report(TimedOut(self.deadline_message))
        elif reason == "shutdown" and code != EXIT_REPORTED:
            self._report(Crashed(f"worker {self.worker.name} shut down before the run ended",
                                 details={"exit_code": code}))
        elif code != EXIT_REPORTED:
            self._report(Crashed(
                f"flow process exited with code {code} without a final state"
                + _stderr_tail(pump), details={"exit_code": code}))
        self.worker.echo(f"run {self.flow_run_id} finished in {elapsed:.2f} s "
                         f"(exit code {code}{', ' + reason if reason else ''})")

    def _report(self, state: Any, patience: float = PATIENCE_SECONDS) -> None:
        assert self.flow_run_id is not None
        transition_id = new_id()  # one id across retries: a resend is a no-op
        try:
            answer = retry_transient(
                lambda: self.worker.client.set_flow_run_state(
                    self.flow_run_id, state, transition_id, lease=self.lease),
                patience, what=f"reporting {state.name} for {self.flow_run_id}")
            if answer.status.value != "ACCEPT":
                log.info("%s not recorded for %s: %s", state.name, self.flow_run_id,
                         answer.reason)
        except errors.SluiceError as exc:
            log.warning("could not report %s for %s: %s", state.name, self.flow_run_id, exc)


def _refuses_field(exc: errors.ValidationError, names: tuple[str, ...]) -> bool:
    """Whether the refusal names one of the request body's fields `names` (an older control
    plane refusing a field it does not know)."""
    for detail in exc.details if isinstance(exc.details, list) else []:
        loc = [part for part in (detail.get("loc") or []) if part != "body"] \
            if isinstance(detail, dict) else []
        if loc[:1] and loc[0] in names:
            return True
    return False


def _stderr_tail(pump: OutputPump) -> str:
    """The flow process's last stderr lines, as the end of a Crashed message."""
    tail = "\n".join(pump.tail)
    return f"; last stderr lines:\n{tail}" if tail else ""
