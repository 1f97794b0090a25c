"""The monitor's dead-letter gauges: per pool for the dashboard, and a total over every pool
(those created after deploy too) that the stack's single dead-letter alarm watches."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.exceptions import NotFound
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.monitoring.dead_letters import DEAD_LETTER_MESSAGES, report_dead_letters


@dataclass
class _Pool:
    name: str


@dataclass
class _Depth:
    dead_letter: int


class _Store:
    def __init__(self, *names: str) -> None:
        self.pools = [_Pool(name) for name in names]

    def list_pools(self) -> list[_Pool]:
        return self.pools


class _Queue:
    def __init__(self, depths: dict[str, int]) -> None:
        self.depths = depths

    def depth(self, pool: str) -> _Depth:
        if pool not in self.depths:
            raise NotFound(f"pool {pool!r} has no queue")
        return _Depth(self.depths[pool])


def test_each_pool_and_the_total_are_reported():
    # Given two pools with dead letters, one without, and one whose queue is gone
    metrics = InMemoryMetrics()
    store, queue = _Store("default", "etl", "ml", "gone"), _Queue({"default": 0, "etl": 2, "ml": 3})
    # When the monitor reports
    total = report_dead_letters(store=store, queue=queue, metrics=metrics)
    # Then every readable pool has its gauge, and the total (no dimension) adds them up
    assert total == 5
    assert metrics.gauge_value(DEAD_LETTER_MESSAGES) == 5
    assert metrics.gauge_value(DEAD_LETTER_MESSAGES, {"pool": "etl"}) == 2
    assert metrics.gauge_value(DEAD_LETTER_MESSAGES, {"pool": "default"}) == 0
    assert metrics.gauge_value(DEAD_LETTER_MESSAGES, {"pool": "gone"}) is None


def test_no_pools_report_a_zero_total():
    metrics = InMemoryMetrics()
    assert report_dead_letters(store=_Store(), queue=_Queue({}), metrics=metrics) == 0
    assert metrics.gauge_value(DEAD_LETTER_MESSAGES) == 0
