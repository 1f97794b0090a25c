"""`make chaos`: the reliability scenarios of tests/reliability with larger counts.

Runs them through pytest with SLUICE_CHAOS_RUNS (default 500) and SLUICE_CHAOS_WORKERS
(default 6), collects the figures each scenario reports, prints the table and writes it to
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
    "3": "attempts cut off from the API for longer than the timeout",
    "3b": "claims written whose answer was lost (and the worker cut off for 3-5 s)",
    "4": "extra copies of run messages",
    "5": "flow processes that killed themselves",
    "6": "crash reports and monitor verdicts racing completions, cancels, heartbeats",
    "7a": "malformed or oversized requests",
    "7b": "malformed, oversized or unknown-run queue messages",
    "8": "secret leaks attempted (print, log, stderr, task failure, raise)",
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
* sizes: SLUICE_CHAOS_RUNS={runs}, SLUICE_CHAOS_WORKERS={workers}; {elapsed / 60:.1f} minutes in all

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
