"""`make chaos`: the reliability scenarios of tests/reliability with larger counts.

Runs them through pytest with SLUICE_CHAOS_RUNS (default 500), SLUICE_CHAOS_WORKERS
(default 6) and SLUICE_FUZZ_EXAMPLES (default 150 worlds of fuzzed records, scenario 7c),
collects the figures each scenario reports, prints the table and writes it to
docs/reliability.md with the machine, the date and the commit. Exit code: pytest's.

    make chaos                                   # the defaults
    SLUICE_CHAOS_RUNS=100 make chaos             # quicker
    SLUICE_CHAOS_SEED=1234 make chaos            # replay one seed in every scenario
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"

#: What a "fault" is in each scenario (the table's fourth column).
FAULTS = {
    "1": "machines lost (SIGKILL of a worker and its flow processes)",
    "2": "API outages (frozen or killed and restarted), each shorter than the timeout",
    "3": "attempts cut off from the API for longer than the timeout (they fence themselves)",
    "3b": "claims written whose answer was lost (and the worker cut off for 3-5 s)",
    "4": "extra copies of run messages",
    "5": "flow processes that killed themselves",
    "6": "crash reports and monitor verdicts racing completions, cancels, heartbeats",
    "7a": "malformed or oversized requests",
    "7b": "malformed, oversized or unknown-run queue messages",
    "7c": "runs and deployments stored with random valid, extreme or corrupt values in every "
          "field (written straight into the store), then ticks and every route over them",
    "8": "secret leaks attempted (print, log, stderr, task failure, raise)",
    "9a": "SIGKILL of a worker alone (its flow processes survive it, in their own sessions)",
    "9b": "SIGSTOP of a worker past the lease, then SIGCONT",
    "9c": "SIGSTOP of a flow process past the lease, then SIGCONT",
    "9d": "a flow run as a plain script, SIGKILLed",
    "9e": "a process a flow started outside its process group (setsid)",
    "9f": "a worker configured to beat every 10 s against a 3 s lease",
    "9g": "writes without the run's lease (none or a wrong one) at every route",
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){memory}, "
            f"Python {platform.python_version()}")


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True
                              ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def outcomes(junit: Path) -> dict[str, str]:
    results = {}
    try:
        for case in ET.parse(junit).iter("testcase"):
            name = case.get("name", "")
            failed = case.find("failure") is not None or case.find("error") is not None
            results[name] = "FAILED" if failed else ("skipped" if case.find("skipped")
                                                      is not None else "passed")
    except (OSError, ET.ParseError):
        pass
    return results


def table(rows: list[dict], results: dict[str, str]) -> str:
    head = ("| scenario | runs | workers | faults injected | retries | lost | duplicated | "
            "max detection latency | seconds | result |")
    lines = [head, "|" + "---|" * 10]
    for row in sorted(rows, key=lambda r: r["scenario"]):
        latency = row.get("max_detection_latency")
        test = row.get("notes", {}).get("test", "").rsplit("::", 1)[-1]
        lines.append(
            f"| {row['scenario']} | {row['runs']} | {row['workers']} | "
            f"{row['crashes_injected']} | {row['retries']} | {row['lost']} | "
            f"{row['duplicated']} | {'-' if latency is None else f'{latency:.1f} s'} | "
            f"{row['seconds']:.0f} | {results.get(test, '?')} |")
    return "\n".join(lines)


def main() -> int:
    runs = os.environ.setdefault("SLUICE_CHAOS_RUNS", "500")
    workers = os.environ.setdefault("SLUICE_CHAOS_WORKERS", "6")
    fuzz = os.environ.setdefault("SLUICE_FUZZ_EXAMPLES", "150")
    with tempfile.TemporaryDirectory() as tmp:
        report, junit = Path(tmp) / "figures.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "SLUICE_CHAOS_REPORT": str(report)}
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "tests/reliability", "-m", "reliability",
                   "-p", "no:cacheprovider", "-o", "timeout=5400", "-q", "-s",
                   f"--junitxml={junit}"]
        code = subprocess.call(command, cwd=ROOT, env=env)
        elapsed = time.monotonic() - started
        rows = [json.loads(line) for line in report.read_text().splitlines()] \
            if report.exists() else []
        results = outcomes(junit)
    body = table(rows, results)
    legend = "\n".join(f"* **{key}**: {text}" for key, text in FAULTS.items())
    notes = "\n".join(f"* {row['scenario']} (seed {row['seed']}): "
                      + ", ".join(f"{k} {v}" for k, v in row.get("notes", {}).items()
                                  if k != "test") for row in sorted(rows,
                                                                   key=lambda r: r["scenario"]))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(f"""# Reliability

Generated by `make chaos` (`tests/reliability/run_chaos.py`) - do not edit by hand.

* machine: {machine()}
* date: {when}
* commit: {commit()}
* sizes: SLUICE_CHAOS_RUNS={runs}, SLUICE_CHAOS_WORKERS={workers}, SLUICE_FUZZ_EXAMPLES={fuzz}; {elapsed / 60:.1f} minutes in all

{body}

Every scenario runs real processes (the embedded server, workers, flow processes) from a seeded
driver and ends with one invariant checker (`tests/reliability/invariants.py`) reading the store
back through the API and the flows' ledger. **lost**: runs not terminal, or not in the state the
scenario expects. **duplicated**: a completed step run again, an attempt run under two leases,
an attempt after the run ended (and, in 2, log lines stored twice; in 4, a flow body started
twice). **retries**: retries the control plane granted (AwaitingRetry after a crash or failure).
**max detection latency**: from the fault to the control plane acting on it (the attempt marked
Crashed, or an unclaimed message claimed again); the monitor's heartbeat timeout is 3 s in 1
and 3, ticking every 0.5 s; the message visibility timeout is 4 s.

What a fault is, per scenario:

{legend}

7c runs in-process instead, on the API app and the tick functions over the real SQLite
adapters (`tests/reliability/test_fuzz_stored_values.py`): **runs** counts the records stored,
**faults injected** those that no longer validate as their model, and **lost** the 5xx answers,
the ticks an exception escaped from, and the runs still holding an expired lease after the last
tick (all must be 0); the notes give the ticks run, the routes called, and how many records the
ticks skipped (`TickRecordErrors`) and the lists left out as unreadable.

In 9, **duplicated** counts moments when two attempts of one run were both active (from the
`tick` lines the flows write every 0.05 s): it must be 0. The notes give the overlap in seconds,
how long the old attempt stayed active after its fault, and detection times.

## Leases and fencing

Every attempt holds a lease of length T (`SLUICE_HEARTBEAT_TIMEOUT_SECONDS`; 3 s in these
scenarios, 90 s by default), renewed every T/3. The holder counts each renewal from the moment it
*sent* the request, on its own monotonic clock, so its deadline falls before the control plane's
record of the same renewal expires. It stops its whole process group (and whatever left the
group but carries the attempt's lease in its environment) when the deadline passes unrenewed,
or at once when its worker disappears. The control plane declares the attempt dead only after
T + m of silence, with the margin m = max(2 s, 0.1 T).

The bound: with the holder's clock running slow by a rate error r_h and the control plane's
running fast by r_c, the old attempt has stopped at most T(1 + r_h) + k after its last renewal
was sent (k: the time its fence takes to act, a wake-up and a SIGKILL, tens of milliseconds),
and the control plane crashes it no sooner than (T + m)(1 - r_c) after that renewal was
written. So two attempts never overlap while m > T(r_h + r_c) + k: for T = 90 s, m = 9 s, which
holds for any rate error below 5 % (quartz clocks err by about 0.01 %, NTP-disciplined ones by
far less) with k up to several seconds. Clock *offsets* do not matter: only intervals on each
side are measured. The monitor's tick and the new attempt's claim only add delay on the safe
side. Not covered: a machine whose every process is frozen at once (a suspended VM) *and* whose
flow process holds the GIL in native code when it resumes; then the worker, the fence thread and
the kernel's parent-death signal all act late, by as long as the native call runs.

### Per-worker leases

A worker process renews the leases of all its runs with one request per interval,
`POST /pools/{{pool}}/workers/{{worker}}/heartbeat` (`service/worker_leases.py`), which is also its
presence beat. Each process start is a new *session* (a fresh id); its claims name the session,
which the run keeps (`lease_session`). A beat lists the runs the worker still holds with their
leases; the control plane reads those runs in one batch (DynamoDB BatchGetItem, 100 keys per
request) to answer, per run, `renewed`, `cancel_requested`, `stop` and the state, and writes one
item: the session's lease (`renewed_at`, expiry, and `held`: the runs and leases it renewed).
The runs themselves are not written. The worker keeps each run's deadline as before: the send
time of the last beat whose answer renewed that run, plus T; `stop` stops the flow process at
once (as a 409 did), and a beat that fails changes no deadline. A beat that names no run,
from a session whose last renewal held none, is presence only: it writes the worker's
`last_seen` and no session, so an idle worker beats every 3 minutes (longer than T) at one
write each. The beat after a worker's last run ended still comes at the busy interval, so its
session is stored holding nothing while its lease is valid. Why two attempts still never
overlap:

* The session write is a compare-and-set on the session's previous renewal and is refused once
  the session's lease has expired while it held runs, checked against the clock when it is
  written. A session that went silent holding runs can never renew again (409: its worker stops
  every run it held and starts a new session). A session whose last renewal held no run gave
  the monitor nothing to judge (the monitor only trusts a session for the runs in `held`), so
  it may renew again after an idle spell; the runs it then names are renewed by the next rule
  alone, through their own claim's recency.
* A beat renews a run only if the run's holder is this session and the session's previous
  renewal held that very lease, or the run's own last sign of life (its claim, or a per-run
  heartbeat) is younger than T. A run dropped from the list, or never renewed in time, is
  never revived: its holder fences itself at its deadline, and the beat answers `stop`.
* The monitor crashes a run only when its own last sign of life is older than T + m and its
  session did not renew it (that run, that lease) in that time either, with the crash write
  conditional as before. If the session's last renewal is that old, its lease expired m ago,
  so no later beat can renew it (first rule); if the session renewed since without the run, no
  later beat can add it back (second rule). So once the monitor has decided, the old attempt
  has no renewal left, and the bound above holds unchanged.
* A restarted worker is a new session: its beats cannot renew the runs of the old one.
* A run its session keeps renewing gets the session's last renewal as its `heartbeat_at` when
  the monitor finds its own one older than T + m (one run write per lease length, not per
  beat), so the run's last sign of life stays visible to people and tools.

Requests per renewal interval (10 s by default) for W workers holding R runs in all, before and
after: per-run heartbeats were R requests (each one run write and one worker write) plus the
presence beats, W every 30 s; per-worker heartbeats are W requests (each one session write, one
worker write, two single-item reads and one batch read of that worker's runs), and an idle
worker beats every 3 minutes (one worker write, two reads: issue 20). For 1,000 runs on 50 workers: about 1,017 requests per 10 s (102/s,
the whole default API throttle) before, 50 per 10 s (5/s) after. Per-run heartbeats stay for
runs without a worker (`sluice run`, a flow's own process) and for workers of an older control
plane (they fall back when the route answers 404). Under throttling (HTTP 429) the client keeps
renewals first: its other calls wait out the 429's `Retry-After`, renewals retry within a
quarter second.

Details:

{notes}

`make test` runs the same scenarios with 12 runs (about 1.5 minutes in all).
""")
    print()
    print(body)
    print(f"\nwritten to {DOC.relative_to(ROOT)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
