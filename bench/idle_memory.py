"""What an idle worker costs its machine, and how fast it stops: resident memory (RSS and PSS,
from /proc) of the worker process plus its warm standby process, once both are idle, against
the embedded server; then the seconds from SIGTERM to exit while it sits in its SQS long poll.

    python bench/idle_memory.py [--repeats N] [--poll-wait S]

Linux only (/proc/<pid>/smaps_rollup). PSS splits pages shared by the two processes (the
interpreter, shared libraries) between them, so the PSS sum is what both really add.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, record  # noqa: E402
from server_process import embedded_server  # noqa: E402

MIB = 1024 * 1024
#: Seconds the worker gets to start, connect and fill its standby before memory is read.
SETTLE_SECONDS = 6.0


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of one process, in KiB (smaps_rollup sums every mapping)."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss"):
            figures[key] = int(value.split()[0])
    return figures


def children(pid: int) -> list[int]:
    """Child processes of `pid`, started from any of its threads (the standby is started from
    its own thread, and /proc/<pid>/task/<tid>/children lists one thread's children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def one_worker(env: dict[str, str], poll_wait: int) -> dict[str, float]:
    """Start a worker, let it idle, read its memory and its standby's, then time its stop."""
    worker = subprocess.Popen([sys.executable, "-m", "sluice.cli", "worker", "start", "--name",
                               "bench-idle", "--poll-wait", str(poll_wait)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_SECONDS)
        standby = children(worker.pid)
        processes = [worker.pid, *standby]
        rss = pss = 0
        for pid in processes:
            figures = memory_kib(pid)
            rss += figures["Rss"]
            pss += figures["Pss"]
        worker_only = memory_kib(worker.pid)
        # The worker is now inside a long poll (an idle queue answers after `poll_wait` s).
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(poll_wait + 30)
        stop_s = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    return {"processes": len(processes), "rss_mib": rss * 1024 / MIB, "pss_mib": pss * 1024 / MIB,
            "worker_rss_mib": worker_only["Rss"] * 1024 / MIB,
            "worker_pss_mib": worker_only["Pss"] * 1024 / MIB, "stop_s": stop_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-wait", type=int, default=20,
                        help="the worker's long-poll wait (SQS allows at most 20 s)")
    args = parser.parse_args()
    with embedded_server():
        env = {**os.environ, "SLUICE_HOME": os.environ["SLUICE_BENCH_HOME"]}
        samples = [one_worker(env, args.poll_wait) for _ in range(args.repeats)]
    figures = {key: round(median([sample[key] for sample in samples]), 2)
               for key in samples[0]}
    figures["poll_wait_s"] = args.poll_wait
    print(f"idle worker on {machine()}")
    for key, value in figures.items():
        print(f"{key:<16} {value}")
    record("idle_worker", figures)


if __name__ == "__main__":
    main()
