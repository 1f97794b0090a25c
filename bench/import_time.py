"""Import cost of the SDK (what Lambda cold starts and short scripts pay): median wall time of a
fresh interpreter doing the import, minus a bare interpreter."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, median, record  # noqa: E402

DEFINE_FLOW = ("from sluice import flow, task\n"
               "@task(retries=1)\ndef double(x): return 2 * x\n"
               "@flow(log_prints=True)\ndef pipeline(): return double(1)\n")

CASES = {
    "import sluice": "import sluice",
    "from sluice import flow, task": "from sluice import flow, task",
    # What a script defining flows pays in all: the first @task/@flow validates its options,
    # which imports pydantic and builds the option models (deferred from the import, issue 20).
    "… and define one @task and one @flow": DEFINE_FLOW,
    "import sluice.models": "import sluice.models",
}


def wall(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    repeats = 7
    base = wall("pass", repeats)
    print(f"import time on {machine()}")
    figures = {}
    for label, code in CASES.items():
        ms = round((wall(code, repeats) - base) * 1000, 1)
        figures[label] = ms
        print(f"{label:<38} {ms:>7} ms")
    record("import_time_ms", figures)


if __name__ == "__main__":
    main()
