"""The simulation core of bench/scale.py: simulated workers driving the run protocol against a
`Target` (the Lambda API handler on moto, or the embedded server over HTTP) on a simulated clock.

How time is simulated: one discrete-event loop. Every action (a run's heartbeat, a worker's
heartbeat or presence beat, an events batch, a run finishing, the minute tick) has a simulated
time; the loop takes them in time order, sets the `SimClock` the control plane reads "now" from
to that time, and makes the call at once. So a simulated 90 s lease, 30 s heartbeat interval and
one-minute monitor tick keep their real proportions while the wall time is only the handlers'
own. Calls are made one at a time (no overlap): the latencies are service times of one request,
not queueing under load.

The workload at steady state: `runs` runs are Running at once on `workers` workers (`limit`
slots each, all busy). Each run lasts `run_minutes`; at t=0 the runs' ages are spread evenly
over that length, so runs finish all through the period, and each finished run's slot takes a
new one at once (created by an operator call, claimed, set Running), keeping `runs` live.
Heartbeats follow the interval the claim answer names (a third of the lease), per run or per
worker (`heartbeat="worker"`: one `POST /pools/{pool}/workers/{worker}/heartbeat` renews all of
a worker's leases; it also marks the worker seen, so no separate presence beat); each run sends
an events batch (`task_runs_per_batch` task-run records and `logs_per_batch` log lines) every
`events_every` seconds; the scheduler and monitor tick every simulated minute.

Every simulated worker beats on time, so any run the control plane crashes, stops or fences
(409 on a live run's write) is a false crash.
"""

from __future__ import annotations

import collections
import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

POOL = "default"
#: Simulated start: any fixed instant (runs' timestamps are relative to it).
EPOCH = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
#: Operator calls that set up the steady state before t=0 are not counted.
SETUP = "setup"
#: The route families the figures are grouped by.
FAMILIES = ("heartbeat (run)", "heartbeat (worker)", "presence", "events", "state", "claim",
            "create run")
TICKS = ("monitor tick", "scheduler tick")


class SimClock:
    """The control plane's "now": moved forward by the simulation loop, read by the app."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.start = start
        self.seconds = 0.0

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    def advance_to(self, seconds: float) -> None:
        self.seconds = max(self.seconds, seconds)


@dataclass
class Answer:
    """One call's outcome: HTTP status, parsed body, handler wall time and what it consumed."""

    status: int
    body: Any
    ms: float
    usage: collections.Counter = field(default_factory=collections.Counter)


class Target(Protocol):
    """A control plane the simulation drives."""

    name: str
    clock: SimClock

    def call(self, method: str, path: str, body: Any = None) -> Answer: ...

    def tick(self, job: str) -> tuple[dict[str, int], Answer]: ...

    def has_worker_heartbeat(self) -> bool: ...


@dataclass(frozen=True)
class Scenario:
    runs: int
    workers: int
    limit: int
    minutes: float = 2.0
    run_minutes: float = 10.0
    events_every: float = 60.0
    task_runs_per_batch: int = 2
    logs_per_batch: int = 2
    presence_every: float = 30.0
    tick_every: float = 60.0
    heartbeat: str = "run"  # "run" | "worker"
    seed: int = 18

    def __post_init__(self) -> None:
        if self.runs > self.workers * self.limit:
            raise ValueError(f"{self.runs} runs do not fit on {self.workers} workers of "
                             f"{self.limit} slots: raise --workers or --limit")


@dataclass
class Family:
    calls: int = 0
    ms: list[float] = field(default_factory=list)
    usage: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class Outcome:
    """What a simulation measured (over `seconds` simulated seconds)."""

    scenario: Scenario
    target: str
    seconds: float
    families: dict[str, Family]
    runs_completed: int = 0
    runs_started: int = 0
    false_crashes: int = 0
    false_crash_reasons: collections.Counter = field(default_factory=collections.Counter)
    wall_seconds: float = 0.0


@dataclass
class _Run:
    id: str
    worker: str
    lease: str
    ends_at: float
    live: bool = True


class Simulation:
    """Drives `scenario` against `target` (see the module docstring)."""

    def __init__(self, target: Target, scenario: Scenario) -> None:
        self.t, self.s = target, scenario
        self.rng = random.Random(scenario.seed)
        self.queue: list[tuple[float, int, str, str]] = []
        self.seq = 0
        self.runs: dict[str, _Run] = {}
        self.held: dict[str, set[str]] = collections.defaultdict(set)  # worker -> run ids
        self.sessions = {f"w{i:04d}": uuid.uuid4().hex for i in range(scenario.workers)}
        self.interval = 30.0
        self.out = Outcome(scenario, target.name, scenario.minutes * 60,
                           {name: Family() for name in (*FAMILIES, *TICKS)})
        self.deployment_id = ""

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Outcome:
        self._setup()
        end = self.s.minutes * 60
        while self.queue and self.queue[0][0] < end:
            at, _, kind, key = heapq.heappop(self.queue)
            self.t.clock.advance_to(at)
            getattr(self, f"_on_{kind}")(key, at)
        return self.out

    def _at(self, at: float, kind: str, key: str) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, key))

    def _call(self, family: str, method: str, path: str, body: Any = None) -> Answer:
        answer = self.t.call(method, path, body)
        if family != SETUP:
            fam = self.out.families[family]
            fam.calls += 1
            fam.ms.append(answer.ms)
            fam.usage.update(answer.usage)
        return answer

    # -- setup: the steady state at t=0 ---------------------------------------------------------
    def _setup(self) -> None:
        s = self.s
        answer = self._call(SETUP, "POST", "/deployments", {
            "flow_name": "scale", "name": "bench", "entrypoint": "flows.py:scale", "pool": POOL})
        self._expect(answer, "create the deployment")
        self.deployment_id = answer.body["id"]
        run_seconds = s.run_minutes * 60
        for i in range(s.runs):
            worker = f"w{i % s.workers:04d}"
            # Ages spread evenly: as many runs finish in each second of the period.
            self._start(worker, counted=False, length=run_seconds * (i + 0.5) / s.runs)
        for worker in self.sessions:
            if s.heartbeat == "worker":
                self._at(self.rng.uniform(0, self.interval), "worker_beat", worker)
            else:
                self._at(self.rng.uniform(0, s.presence_every), "presence", worker)
        # The steady state is set up: from here on the target counts what calls consume.
        getattr(self.t, "setup_done", lambda: None)()
        for minute in range(1, int(s.minutes * 60 // s.tick_every) + 1):
            self._at(minute * s.tick_every - 1e-3, "tick", "monitor")
            self._at(minute * s.tick_every - 1e-3, "tick", "scheduler")

    def _start(self, worker: str, *, counted: bool, length: float) -> None:
        """A new run on `worker`'s free slot: created, claimed, Running for `length` s."""
        now = self.t.clock.seconds
        created = self._call("create run" if counted else SETUP, "POST", "/flow-runs", {
            "flow_name": "scale", "deployment_id": self.deployment_id})
        self._expect(created, "create a run")
        run_id = created.body["id"]
        claim = self._call("claim" if counted else SETUP, "POST",
                           f"/pools/{POOL}/flow-runs/{run_id}/claim",
                           {"worker": worker, "claim_id": uuid.uuid4().hex,
                            # Per-worker heartbeats renew the runs their session claimed.
                            **({"session": self.sessions[worker]}
                               if self.s.heartbeat == "worker" else {})})
        self._expect(claim, "claim a run")
        self.interval = float(claim.body.get("heartbeat_interval_seconds") or self.interval)
        lease = claim.body["lease"]
        running = self._set_state(run_id, lease, "RUNNING", "state" if counted else SETUP)
        self._expect(running, "start a run")
        run = _Run(run_id, worker, lease, now + length)
        self.runs[run_id] = run
        self.held[worker].add(run_id)
        self.out.runs_started += counted
        self._at(run.ends_at, "finish", run_id)
        if self.s.heartbeat == "run":
            self._at(now + self.rng.uniform(0, self.interval), "run_beat", run_id)
        self._at(now + self.rng.uniform(0, self.s.events_every), "events", run_id)

    def _set_state(self, run_id: str, lease: str, state: str, family: str) -> Answer:
        return self._call(family, "POST",
                          f"/pools/{POOL}/flow-runs/{run_id}/state", {
                              "state": {"type": state, "timestamp": self.t.clock().isoformat()},
                              "transition_id": uuid.uuid4().hex, "lease": lease})

    @staticmethod
    def _expect(answer: Answer, what: str) -> None:
        if answer.status >= 300:
            raise RuntimeError(f"could not {what}: {answer.status} {answer.body}")

    # -- actions -------------------------------------------------------------------------------
    def _crashed(self, run: _Run, reason: str) -> None:
        """A live run of a beating worker was lost: count it and free its slot."""
        if run.live:
            run.live = False
            self.held[run.worker].discard(run.id)
            self.out.false_crashes += 1
            self.out.false_crash_reasons[reason] += 1

    def _on_run_beat(self, run_id: str, at: float) -> None:
        run = self.runs.get(run_id)
        if run is None or not run.live:
            return  # finished meanwhile
        answer = self._call("heartbeat (run)", "POST",
                            f"/pools/{POOL}/flow-runs/{run_id}/heartbeat", {"lease": run.lease})
        if answer.status >= 300:
            self._crashed(run, f"run heartbeat {answer.status}")
            return
        self._at(at + self.interval, "run_beat", run_id)

    def _on_worker_beat(self, worker: str, at: float) -> None:
        held = sorted(self.held[worker])
        answer = self._call("heartbeat (worker)", "POST",
                            f"/pools/{POOL}/workers/{worker}/heartbeat", {
                                "session": self.sessions[worker], "host": "bench",
                                "version": "scale", "slots": self.s.limit,
                                "leases": [{"flow_run_id": r, "lease": self.runs[r].lease}
                                           for r in held]})
        if answer.status >= 300:
            for run_id in held:
                self._crashed(self.runs[run_id], f"worker heartbeat {answer.status}")
        else:
            for run_id, verdict in (answer.body.get("runs") or {}).items():
                if run_id in self.runs and (verdict.get("stop") or not verdict.get("renewed")):
                    self._crashed(self.runs[run_id], "worker heartbeat: not renewed")
        self._at(at + float(answer.body.get("heartbeat_interval_seconds") or self.interval)
                 if answer.status < 300 else at + self.interval, "worker_beat", worker)

    def _on_presence(self, worker: str, at: float) -> None:
        self._call("presence", "POST", f"/pools/{POOL}/workers", {
            "name": worker, "host": "bench", "version": "scale", "slots": self.s.limit})
        self._at(at + self.s.presence_every, "presence", worker)

    def _on_events(self, run_id: str, at: float) -> None:
        run = self.runs.get(run_id)
        if run is None or not run.live:
            return  # finished meanwhile
        stamp = self.t.clock().isoformat()
        tag = uuid.uuid4().hex[:8]
        batch = {"lease": run.lease, "task_runs": [{
            "id": f"{run_id[:8]}-{tag}-{n}", "flow_run_id": run_id, "task_name": "step",
            "name": f"step-{tag}-{n}", "state": {"type": "COMPLETED", "timestamp": stamp},
            "start_time": stamp, "end_time": stamp, "run_count": 1, "version": 1,
        } for n in range(self.s.task_runs_per_batch)], "logs": [{
            "id": f"{run_id[:8]}-{tag}-log-{n}", "flow_run_id": run_id, "timestamp": stamp,
            "level": "INFO", "logger": "scale", "message": f"step {tag} {n} done",
        } for n in range(self.s.logs_per_batch)]}
        answer = self._call("events", "POST", f"/pools/{POOL}/flow-runs/{run_id}/events", batch)
        if answer.status >= 300:
            self._crashed(run, f"events {answer.status}")
            return
        self._at(at + self.s.events_every, "events", run_id)

    def _on_finish(self, run_id: str, at: float) -> None:
        run = self.runs[run_id]
        if run.live:
            answer = self._set_state(run_id, run.lease, "COMPLETED", "state")
            if answer.status >= 300:
                self._crashed(run, f"final state {answer.status}")
            else:
                run.live = False
                self.held[run.worker].discard(run_id)
                self.out.runs_completed += 1
        del self.runs[run_id]
        self._start(run.worker, counted=True, length=self.s.run_minutes * 60)

    def _on_tick(self, job: str, at: float) -> None:
        result, answer = self.t.tick(job)
        fam = self.out.families[f"{job} tick"]
        fam.calls += 1
        fam.ms.append(answer.ms)
        fam.usage.update(answer.usage)
        # Every simulated worker beats on time: whatever the monitor crashes is a false crash.
        crashed = int(result.get("crashed", 0)) + int(result.get("retried", 0))
        if crashed:
            self.out.false_crashes += crashed
            self.out.false_crash_reasons["monitor"] += crashed


def simulate(target: Target, scenario: Scenario) -> Outcome:
    """Run `scenario` against `target`; see the module docstring for how time is simulated."""
    import time

    started = time.perf_counter()
    outcome = Simulation(target, scenario).run()
    outcome.wall_seconds = time.perf_counter() - started
    return outcome


def live_families(outcome: Outcome) -> Iterator[tuple[str, Family]]:
    yield from ((name, fam) for name, fam in outcome.families.items() if fam.calls)
