"""Test-only fault injection for the reliability suite (`tests/reliability/`). Off by default.

`SLUICE_WORKER_FAULT=<point>[:<n>]` makes the worker SIGKILL itself the n-th time (default: the
first) one of its runs reaches `<point>`:

* `after_receive`: a run message was received and parsed; nothing was claimed yet;
* `after_claim`: the run was claimed (it holds a lease); no flow process was started yet.

These are the instants of "the machine died" that no outside timing hits reliably (they last
microseconds). Before dying the worker prints one line, `fault injected: <point> <run id> at
<unix time>`, so the suite can measure how long the control plane takes to notice. With the
variable unset (always, outside that suite) `reached` is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

ENV_FAULT = "SLUICE_WORKER_FAULT"
POINTS = ("after_receive", "after_claim")
_counts: dict[str, int] = {}
_lock = threading.Lock()


def reached(point: str, flow_run_id: str) -> None:
    spec = os.environ.get(ENV_FAULT)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] != int(nth or 1):
            return
        print(f"fault injected: {point} {flow_run_id} at {time.time():.6f}", file=sys.stderr,
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
