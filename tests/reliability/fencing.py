"""What the fencing scenarios (test_fencing.py) measure from the flows' ledger: when each attempt
of a run was active, whether two attempts of one run were ever active at once, and how long a
fenced attempt went on after its fault."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .driver import ApiReader, Entry, Ledger

#: Ledger events that prove an attempt (or a process it started) was doing something.
ACTIVITY = {"flow-start", "step-begin", "tick", "step-done", "flow-end", "child"}


@dataclass(frozen=True)
class Window:
    lease: str
    first: float
    last: float
    entries: int


def windows(entries: list[Entry]) -> dict[str, list[Window]]:
    """Per run, the activity window of each attempt (by lease), oldest first."""
    spans: dict[tuple[str, str], list[float]] = defaultdict(list)
    for entry in entries:
        if entry.event in ACTIVITY:
            spans[(entry.run_id, entry.lease)].append(entry.at)
    runs: dict[str, list[Window]] = defaultdict(list)
    for (run_id, lease), times in spans.items():
        runs[run_id].append(Window(lease, min(times), max(times), len(times)))
    for found in runs.values():
        found.sort(key=lambda w: w.first)
    return dict(runs)


def overlap_seconds(ledger: Ledger) -> tuple[float, list[str]]:
    """Total time two attempts of one run were both active, and a line per overlap."""
    total, lines = 0.0, []
    for run_id, found in windows(ledger.entries()).items():
        for i, earlier in enumerate(found):
            for later in found[i + 1:]:
                shared = min(earlier.last, later.last) - max(earlier.first, later.first)
                if shared > 0:
                    total += shared
                    lines.append(f"{run_id}: attempts {earlier.lease} and {later.lease} were "
                                 f"both active for {shared:.2f} s")
    return total, lines


def last_activity(ledger: Ledger, run_id: str, lease: str) -> float:
    return max(e.at for e in ledger.entries()
               if e.run_id == run_id and e.lease == lease and e.event in ACTIVITY)


def leases_of(ledger: Ledger, run_id: str) -> list[str]:
    return [w.lease for w in windows(ledger.entries()).get(run_id, [])]


def crash_times(api: ApiReader, run_id: str) -> list[float]:
    """When the control plane ended an attempt of the run as crashed (Crashed, or the
    AwaitingRetry that stands for a crash with retries left)."""
    found = []
    for state in api.history(run_id):
        failed = (state.get("details") or {}).get("failed_state")
        if state["type"] == "CRASHED" or failed == "Crashed":
            found.append(datetime.fromisoformat(state["timestamp"]).timestamp())
    return found


def spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 2), "max": round(max(values), 2)}
