"""`Metrics` kept in memory: the embedded server's adapter, and what tests assert on."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import TypeVar

#: A metric's identity: its name and its dimensions, sorted so their order does not matter.
MetricKey = tuple[str, tuple[tuple[str, str], ...]]
V = TypeVar("V")


class InMemoryMetrics:
    """`Metrics` that keeps counters, the last value of each gauge, and every timing.

    Thread-safe. Read back with `counter`, `gauge_value` and `timings`: with `dimensions` they
    read exactly that series, without it they read every series of the name (counters summed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[MetricKey, float] = defaultdict(float)
        self._gauges: dict[MetricKey, float] = {}
        self._timings: dict[MetricKey, list[float]] = defaultdict(list)
        self.flush_count = 0

    # ---- the Metrics port ----------------------------------------------------------------------

    def count(
        self, name: str, value: float = 1, dimensions: Mapping[str, str] | None = None
    ) -> None:
        with self._lock:
            self._counters[_key(name, dimensions)] += value

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        key = _key(name, dimensions)
        with self._lock:
            # Re-inserting keeps the dict in order of last write, which `gauge_value` relies on.
            self._gauges.pop(key, None)
            self._gauges[key] = value

    def timing(
        self, name: str, milliseconds: float, dimensions: Mapping[str, str] | None = None
    ) -> None:
        with self._lock:
            self._timings[_key(name, dimensions)].append(milliseconds)

    def flush(self) -> None:
        # Nothing leaves the process; counting flushes lets tests check handlers call it.
        with self._lock:
            self.flush_count += 1

    # ---- reading back --------------------------------------------------------------------------

    def counter(self, name: str, dimensions: Mapping[str, str] | None = None) -> float:
        """The counter's total (of one series with `dimensions`, else of all its series)."""
        with self._lock:
            return sum(self._select(self._counters, name, dimensions).values())

    def gauge_value(self, name: str, dimensions: Mapping[str, str] | None = None) -> float | None:
        """The value last recorded for the gauge (in one series with `dimensions`), or None."""
        with self._lock:
            values = list(self._select(self._gauges, name, dimensions).values())
        return values[-1] if values else None

    def timings(self, name: str, dimensions: Mapping[str, str] | None = None) -> list[float]:
        """Every duration recorded under the name (of one series with `dimensions`)."""
        with self._lock:
            series = self._select(self._timings, name, dimensions).values()
            return [ms for values in series for ms in values]

    def names(self) -> set[str]:
        """Every metric name recorded so far."""
        with self._lock:
            return {key[0] for key in (*self._counters, *self._gauges, *self._timings)}

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()
            self._timings.clear()
            self.flush_count = 0

    @staticmethod
    def _select(
        series: Mapping[MetricKey, V], name: str, dimensions: Mapping[str, str] | None
    ) -> dict[MetricKey, V]:
        if dimensions is not None:
            key = _key(name, dimensions)
            return {key: series[key]} if key in series else {}
        return {key: value for key, value in series.items() if key[0] == name}


def _key(name: str, dimensions: Mapping[str, str] | None) -> MetricKey:
    return name, tuple(sorted((dimensions or {}).items()))
