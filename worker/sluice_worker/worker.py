"""The worker: long-polls its pool's queue, runs each claimed flow run in its own process, and
only ever makes outbound calls (SQS and the API)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from sluice import __version__

from .queue import MAX_WAIT_SECONDS, PoolQueue
from .sources import CodeCache
from .standby import Standby
from .supervisor import RunSettings, RunSupervisor
from .worker_leases import WorkerLeases

log = logging.getLogger("sluice.worker")

#: Seconds between a worker's presence heartbeats. A pool shows a worker offline after 90 s of
#: silence (`WORKER_ONLINE_WITHIN`), i.e. three missed beats; a busy worker is also seen through
#: its runs' heartbeats. Every beat is an API call and a DynamoDB write around the clock, so this
#: is most of what an idle worker costs (docs/cost.md).
PRESENCE_INTERVAL_SECONDS = 30.0


class Worker:
    """Runs up to `limit` flow runs at once; never holds more messages than free slots."""

    def __init__(self, client: Any, queue: PoolQueue, *, pool: str, name: str | None = None,
                 limit: int = 4, code: CodeCache, reporter: Any,
                 run_settings: RunSettings | None = None, poll_wait: int = MAX_WAIT_SECONDS,
                 shutdown_grace: float = 30.0, echo: Any = None, standby: bool = True) -> None:
        if limit < 1:
            from sluice.exceptions import ConfigurationError

            raise ConfigurationError(f"--limit must be at least 1, got {limit}")
        self.client, self.queue, self.pool = client, queue, pool
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.limit, self.code, self.reporter = limit, code, reporter
        self.run_settings = run_settings or RunSettings()
        self.poll_wait, self.shutdown_grace = poll_wait, shutdown_grace
        self._echo = echo
        self._active: set[RunSupervisor] = set()
        self._messages: dict[str, RunSupervisor] = {}  # message id -> its supervisor
        #: Whether claims ask the control plane to requeue runs waiting for a concurrency slot
        #: (turned off, once, by a control plane too old to know the field).
        self.requeue_supported = True
        #: Whether claims start the run and bring its deployment (issue 20: two requests fewer
        #: per run); turned off, once, by a control plane too old to know the fields.
        self.claim_starts_supported = True
        self._active_lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_runs = 0
        self.standby = Standby(enabled=standby)
        #: Short run heartbeats (tests, demos) shorten presence too, so pools show changes soon.
        self.presence_interval = min(PRESENCE_INTERVAL_SECONDS,
                                     max(1.0, 3 * self.run_settings.heartbeat_interval))
        #: One heartbeat per interval renews every run this process holds (and is its presence).
        self.leases = WorkerLeases(client, pool=pool, worker=self.name,
                                   max_interval=self.run_settings.heartbeat_interval,
                                   idle_interval=self.presence_interval,
                                   presence=self._presence)
        #: Set once every run is done: the heartbeat loop outlives polling (runs finishing
        #: during shutdown still need their leases renewed).
        self._leases_done = threading.Event()

    # -- console ---------------------------------------------------------------------------------
    def echo(self, text: str) -> None:
        if self._echo is not None:
            self._echo(text)

    def echo_output(self, flow_run_id: str, stream: str, line: str) -> None:
        log.debug("[%s %s] %s", flow_run_id[-6:], stream, line)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        with self._active_lock:
            return len(self._active)

    def take_message(self, message_id: str, supervisor: RunSupervisor) -> bool:
        """Whether `supervisor` may handle the message: no other one on this worker does (a
        message delivered twice has one id, so its claims would get one lease)."""
        with self._active_lock:
            return self._messages.setdefault(message_id, supervisor) is supervisor

    def release_message(self, message_id: str, supervisor: RunSupervisor) -> None:
        with self._active_lock:
            if self._messages.get(message_id) is supervisor:
                del self._messages[message_id]

    def on_started(self, supervisor: RunSupervisor) -> None:
        self.started_runs += 1

    def serve(self) -> None:
        """Poll until `stop()`; then finish gracefully (see `shutdown`)."""
        self.echo(f"worker {self.name} polling pool '{self.pool}' with {self.limit} slot(s)")
        # The first beat before the first claim: claims name the session only if the control
        # plane has the per-worker route (else runs heartbeat on their own, as before).
        self.leases.beat_once()
        presence = threading.Thread(
            target=self.leases.serve, args=(self._leases_done, self._presence_beat),
            daemon=True, name="sluice-heartbeat")
        presence.start()
        self.standby.prepare()
        while not self._stopping.is_set():
            free = self.limit - self.active
            if free <= 0:
                self._slot_freed.wait(0.5)
                self._slot_freed.clear()
                continue
            try:
                # Interrupted by `stop()`: an idle worker stops within a fraction of a second
                # of SIGTERM instead of waiting out its long poll.
                messages = self.queue.receive_unless_stopped(
                    self._stopping, free, self.poll_wait, self.run_settings.visibility_timeout)
            except Exception as exc:  # the queue or network is down: keep trying, gently
                log.warning("receiving from pool %s failed: %s", self.pool, exc)
                self._stopping.wait(2.0)
                continue
            if self._stopping.is_set():
                self._give_back(messages)
                break
            for message in messages:
                self._launch(message)
        self.shutdown()

    def _presence(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "version": __version__,
                "slots": max(0, self.limit - self.active)}

    def _presence_beat(self) -> None:
        """Tell an older control plane (no per-worker heartbeat) this worker is alive, busy or
        idle, so pools show it."""
        from sluice.models import WorkerHeartbeat

        if self._stopping.is_set():
            return
        try:
            self.client.worker_heartbeat(self.pool, WorkerHeartbeat(name=self.name,
                                                                    **self._presence()))
        except Exception as exc:  # presence is informative; runs heartbeat on their own
            log.debug("worker heartbeat failed: %s", exc)

    def _launch(self, message: dict[str, Any]) -> None:
        supervisor = RunSupervisor(self, message)
        with self._active_lock:
            self._active.add(supervisor)

        def body() -> None:
            try:
                supervisor.run()
            finally:
                with self._active_lock:
                    self._active.discard(supervisor)
                self._slot_freed.set()

        thread = threading.Thread(target=body, daemon=True, name="sluice-run")
        self._threads.append(thread)
        thread.start()

    def _give_back(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                self.queue.change_visibility(message["ReceiptHandle"], 0)
            except Exception as exc:
                log.warning("could not return message %s: %s", message.get("MessageId"), exc)

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()

    def shutdown(self) -> None:
        """Stop receiving; let running runs finish within the grace period, then stop the rest
        (they are reported Crashed, so their retries apply)."""
        deadline = time.monotonic() + self.shutdown_grace
        if self.active:
            self.echo(f"waiting up to {self.shutdown_grace:g} s for {self.active} run(s)")
        while self.active and time.monotonic() < deadline:
            time.sleep(0.2)
        with self._active_lock:
            remaining = list(self._active)
        for supervisor in remaining:
            supervisor.request_stop("shutdown")
        for thread in self._threads:
            thread.join(timeout=self.run_settings.cancel_grace + 15)
        self._leases_done.set()
        self.leases.wake.set()
        self.standby.close()
        self.reporter.close(timeout=10)
        self.echo(f"worker {self.name} stopped")


def run_worker(*, pool: str, limit: int = 4, name: str | None = None,
               profile: str | None = None, api_url: str | None = None,
               cache_dir: Path | None = None, heartbeat_interval: float = 10.0,
               shutdown_grace: float = 30.0, poll_wait: int = MAX_WAIT_SECONDS,
               visibility_timeout: int = 60, may_trigger: Sequence[str] = ()) -> None:
    """`sluice worker start`: serve until SIGTERM or Ctrl-C. `may_trigger`: deployments
    ("flow/name") its flows may start with `run_deployment` (embedded server)."""
    if heartbeat_interval >= visibility_timeout:
        from sluice.exceptions import ConfigurationError

        raise ConfigurationError(
            f"--heartbeat-interval ({heartbeat_interval:g} s) must be shorter than "
            f"--visibility-timeout ({visibility_timeout} s): each heartbeat extends the "
            "message's visibility, which must not lapse in between")
    from sluice.client import get_client
    from sluice.client.reporter import HttpReporter
    from sluice.settings import get_settings

    from .credentials import hide_from_flows, pool_client

    hide_from_flows()
    client = pool_client(get_client(profile=profile, api_url=api_url, pool=pool), pool,
                         may_trigger)
    pool_info = client.get_pool(pool)  # fails early, naming the pool, if it does not exist
    queue_url = pool_info.queue_url if client.connection.kind == "aws" else None
    queue = PoolQueue.connect(client.connection, pool, queue_url)
    code = CodeCache(cache_dir or get_settings().home / "worker",
                     download_bundle=getattr(client, "download_bundle", None))

    def echo(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} | {text}", file=sys.stderr, flush=True)

    worker = Worker(client, queue, pool=pool, name=name, limit=limit, code=code,
                    reporter=HttpReporter(client), poll_wait=poll_wait,
                    run_settings=RunSettings(heartbeat_interval=heartbeat_interval,
                                             visibility_timeout=visibility_timeout),
                    shutdown_grace=shutdown_grace, echo=echo)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (echo("stopping: no new runs"), worker.stop()))
    worker.serve()
