"""docs/coming-from-prefect.md: its Sluice "after" flow runs as written, and every name its
tables promise exists."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "coming-from-prefect.md"


def sluice_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (after,) = [b for b in blocks if b.startswith("# Sluice")]
    return after.split('if __name__ == "__main__":')[0]


def test_the_after_example_runs_as_written(tmp_path, monkeypatch):
    # Given the doc's flow, with its two I/O functions stubbed
    monkeypatch.setenv("SLUICE_RESULTS_DIR", str(tmp_path))
    written: list[int] = []
    namespace = {"__name__": "after_example",
                 "fetch": lambda page: [{"page": page, "row": i} for i in range(page + 1)],
                 "write": lambda rows: written.append(len(rows)) or len(rows)}
    exec(compile(sluice_example(), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    # When it runs
    total = namespace["orders"]("2024-06-01", pages=4)
    # Then it loaded every page's rows, once per page
    assert total == 1 + 2 + 3 + 4 and sorted(written) == [1, 2, 3, 4]
    state = namespace["orders"]("2024-06-02", pages=2, return_state=True)
    assert state.is_completed()


def test_every_name_the_tables_promise_exists():
    import sluice
    import sluice.cache_policies
    import sluice.states
    import sluice.task_runners

    for name in ("flow", "task", "unmapped", "allow_failure", "quote", "tags", "wait",
                 "as_completed", "get_run_logger", "exponential_backoff", "run_deployment",
                 "Completed", "Failed", "Cancelled", "Crashed", "Pending", "Running",
                 "TaskFutureList", "ThreadPoolTaskRunner", "ProcessPoolTaskRunner",
                 "DaskTaskRunner"):
        assert getattr(sluice, name) is not None, name
    for name in ("INPUTS", "TASK_SOURCE", "FLOW_PARAMETERS", "RUN_ID", "NONE", "NO_CACHE",
                 "DEFAULT", "CachePolicy", "Inputs", "CompoundCachePolicy", "CacheKeyFnPolicy"):
        assert getattr(sluice.cache_policies, name) is not None, name
    for name in ("Completed", "Failed", "Cancelled", "Crashed", "Pending", "Running",
                 "Scheduled", "Paused", "Cached"):
        assert getattr(sluice.states, name) is not None, name
    for name in ("ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner"):
        assert getattr(sluice.task_runners, name) is not None, name
