"""What the reliability scenarios drive: an installation with a fast monitor, workers with
optional faults, machine losses, a pid/step ledger, the API read back, and the figures each
scenario reports. Every wait is bounded; every random choice comes from the scenario's seeded
`random.Random`."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from e2e.harness import SLUICE, Process, Sluice, wait_for

PROJECT = Path(__file__).parent / "project"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

# -- sizes: small in `make test`, large under `make chaos` -------------------------------------


def chaos_runs(default: int = 12) -> int:
    """Runs per scenario: SLUICE_CHAOS_RUNS (make chaos sets it) or the scenario's default."""
    return int(os.environ.get("SLUICE_CHAOS_RUNS") or default)


def chaos_workers(default: int) -> int:
    return int(os.environ.get("SLUICE_CHAOS_WORKERS") or default)


def scaled(default: int, *, per: int = 12, low: int = 1) -> int:
    """A count that grows with SLUICE_CHAOS_RUNS the way `default` relates to 12 runs."""
    return max(low, round(default * chaos_runs() / per))


# -- the installation --------------------------------------------------------------------------
#: The monitor's heartbeat timeout in the scenarios (the embedded server ticks every 0.5 s).
HEARTBEAT_TIMEOUT = 3.0
TICK = 0.5
#: Heartbeat interval and message visibility of the scenarios' workers.
HEARTBEAT_INTERVAL = 0.5
VISIBILITY_TIMEOUT = 4


class Installation(Sluice):
    """`e2e.harness.Sluice` plus what the scenarios need: workers with their own environment,
    machine losses, the API read back."""

    def __init__(self, home: Path, port: int, *, heartbeat_timeout: float = HEARTBEAT_TIMEOUT
                 ) -> None:
        super().__init__(home, port)
        self.heartbeat_timeout = heartbeat_timeout
        self.env["SLUICE_HEARTBEAT_TIMEOUT_SECONDS"] = str(int(heartbeat_timeout))
        self.named: dict[str, Process] = {}

    def start_worker(self, *extra: str, name: str | None = None,  # type: ignore[override]
                     env: dict[str, str] | None = None, limit: int = 1) -> Process:
        name = name or f"w{len(self.workers)}"
        worker = Process([*SLUICE, "worker", "start", "--name", name, "--poll-wait", "1",
                          "--heartbeat-interval", str(HEARTBEAT_INTERVAL),
                          "--visibility-timeout", str(VISIBILITY_TIMEOUT),
                          "--limit", str(limit), "--shutdown-grace", "5", *extra],
                         {**self.env, **(env or {})}, self.home.parent / f"worker-{name}.log")
        self.workers.append(worker)
        self.named[name] = worker
        return worker

    def deploy(self, flow: str, name: str, *extra: str) -> str:
        self.cli("deploy", f"flows.py:{flow}", "--name", name, "--project-dir", str(PROJECT),
                 *extra)
        return f"{flow.replace('_', '-')}/{name}"

    def trigger(self, ref: str, **parameters: Any) -> str:
        flow_name, name = ref.split("/")
        with self.api() as api:
            answer = api.post(f"/deployments/{flow_name}/{name}/runs",
                              json={"parameters": parameters})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["id"]

    def reader(self) -> ApiReader:
        return ApiReader(self.url, self.token)

    def close(self) -> None:
        for worker in self.workers:
            if worker.popen.poll() is None:
                worker.stop(signal.SIGTERM, timeout=15)
            else:
                worker._log.close()
        if self.server is not None and self.server.popen.poll() is None:
            self.server.stop()


# -- reading the store back through the API ----------------------------------------------------
class ApiReader:
    """The control plane as a user sees it: plain JSON through the HTTP API."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30,
                                 headers={"authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/flow-runs/{run_id}")

    def history(self, run_id: str) -> list[dict[str, Any]]:
        data = self.get(f"/flow-runs/{run_id}/history")
        return data["items"] if isinstance(data, dict) else data

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.get(path, limit=200, **params, **({"cursor": cursor} if cursor else {}))
            yield from page["items"]
            if not page["items"] or not page.get("next_cursor"):
                return
            cursor = page["next_cursor"]

    def task_runs(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/flow-runs/{run_id}/task-runs"))

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/flow-runs/{run_id}/logs"))

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self._pages("/flow-runs", **filters))

    def states(self, run_ids: list[str]) -> dict[str, str]:
        """State type of each run (many: a few pages of the run list, not a call per run)."""
        if len(run_ids) <= 10:
            return {run_id: self.run(run_id)["state"]["type"] for run_id in run_ids}
        wanted = set(run_ids)
        found = {r["id"]: r["state"]["type"] for r in self.runs() if r["id"] in wanted}
        missing = wanted - set(found)
        found.update({run_id: self.run(run_id)["state"]["type"] for run_id in missing})
        return found


def wait_all_terminal(installation: Installation, run_ids: list[str], timeout: float,
                      on_tick: Any = None) -> None:
    """Until every run ended (bounded); `on_tick()` runs between polls (the chaos driver)."""
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    with installation.reader() as api:
        while pending and time.monotonic() < deadline:
            try:
                states = api.states(sorted(pending))
                pending -= {run_id for run_id, kind in states.items() if kind in TERMINAL}
            except (httpx.HTTPError, AssertionError):
                pass  # the server is away (an outage scenario): poll again later
            if on_tick is not None:
                on_tick()
            if pending:
                time.sleep(0.2)
    if pending:
        raise AssertionError(f"{len(pending)} run(s) did not end within {timeout} s: "
                             f"{sorted(pending)[:5]}")


# -- the ledger ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    event: str
    run_id: str
    attempt: int
    lease: str
    step: str
    pid: int
    ppid: int
    at: float


class Ledger:
    """The file the flows append to (see project/flows.py): steps, attempts, pids."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 8:
                continue  # a line being written right now
            event, run_id, attempt, lease, step, pid, ppid, at = parts
            rows.append(Entry(event, run_id, int(attempt) if attempt.isdigit() else 0, lease,
                              step, int(pid), int(ppid), float(at)))
        return rows

    def by_run(self) -> dict[str, list[Entry]]:
        runs: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries():
            runs[entry.run_id].append(entry)
        return runs

    def flow_pids_of(self, worker_pid: int) -> set[int]:
        """Flow processes a worker started (the pid ledger)."""
        return {e.pid for e in self.entries() if e.ppid == worker_pid}


# -- processes -----------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def children_of(pid: int) -> set[int]:
    """Direct children of `pid` (from /proc): the worker's standby and flow processes."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def kill_machine(worker: Process, ledger: Ledger | None = None) -> float:
    """Lose the worker's machine: freeze the worker and every process it started (children from
    /proc, flow processes from the pid ledger), then SIGKILL them all. Returns the time of the
    kill (time.time())."""
    pid = worker.popen.pid
    victims = children_of(pid) | (ledger.flow_pids_of(pid) if ledger else set())
    for target in (pid, *victims):
        try:
            os.kill(target, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    killed_at = time.time()
    for group in (pid, *victims):
        try:
            os.killpg(group, signal.SIGKILL)  # each flow process leads its own group
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
    worker.popen.wait(10)
    wait_for(lambda: not any(alive(v) for v in victims), 10, f"the processes of worker {pid}")
    return killed_at


def worker_fault_line(worker: Process) -> tuple[str, str, float] | None:
    """(point, run id, time) of the fault a worker injected into itself, if it did."""
    for line in worker.output().splitlines():
        if line.startswith("fault injected: "):
            _, _, point, run_id, _, at = line.split()
            return point, run_id, float(at)
    return None


# -- watching for stuck runs while a scenario runs --------------------------------------------
class StuckWatch:
    """Samples the live runs about once a second (in a thread) and records any Pending, Running
    or Cancelling run whose last sign of life is older than the heartbeat bound: the monitor
    must have crashed it by then."""

    def __init__(self, url: str, token: str, heartbeat_timeout: float, slack: float = 3.0
                 ) -> None:
        self.url, self.token = url, token
        self.bound = heartbeat_timeout + 2 * TICK + slack
        self.stuck: dict[str, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="stuck-watch")
        self.paused = threading.Event()  # set while the scenario makes the API unreachable

    def __enter__(self) -> StuckWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        from datetime import datetime

        with httpx.Client(base_url=self.url, timeout=5,
                          headers={"authorization": f"Bearer {self.token}"}) as http:
            while not self._stop.wait(1.0):
                if self.paused.is_set():
                    continue
                try:
                    for state in ("PENDING", "RUNNING", "CANCELLING"):
                        page = http.get("/flow-runs", params={"state_type": state,
                                                              "limit": 200}).json()
                        now = time.time()
                        for run in page.get("items", []):
                            life = run.get("heartbeat_at") or run.get("start_time") or \
                                run.get("updated")
                            age = now - datetime.fromisoformat(life).timestamp()
                            if age > self.bound and not self.paused.is_set():
                                self.stuck[run["id"]] = max(age, self.stuck.get(run["id"], 0))
                    self.samples += 1
                except (httpx.HTTPError, ValueError, KeyError):
                    continue


# -- figures -------------------------------------------------------------------------------------
@dataclass
class Figures:
    """One scenario's line of the chaos table."""

    scenario: str
    seed: int
    runs: int = 0
    workers: int = 0
    crashes_injected: int = 0
    retries: int = 0
    lost: int = 0
    duplicated: int = 0
    max_detection_latency: float | None = None
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        """Append to SLUICE_CHAOS_REPORT (make chaos reads it) and print."""
        self.notes.setdefault("test", os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])
        line = json.dumps(asdict(self))
        print(f"\nchaos figures: {line}")
        target = os.environ.get("SLUICE_CHAOS_REPORT")
        if target:
            with open(target, "a") as fh:
                fh.write(line + "\n")
