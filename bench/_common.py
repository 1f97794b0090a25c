"""What every benchmark prints: the machine, the commit, and medians over repeats."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except Exception:
        commit = "unknown"
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": str(os.cpu_count()), "platform": platform.platform(terse=True),
            "commit": commit}


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def record(section: str, figures: dict) -> None:
    """Merge this benchmark's figures into bench/results.json."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = {"machine": machine(), **figures}
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True))
