"""`Metrics` as CloudWatch Embedded Metric Format: log lines that CloudWatch turns into metrics."""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Mapping

from ...config import DEFAULT_METRICS_NAMESPACE
from .emf_documents import MAX_DIMENSIONS_PER_SET, DimensionKey, Series, emf_lines

logger = logging.getLogger(__name__)

#: CloudWatch metric units of the port's three kinds of metric.
COUNT_UNIT = "Count"
MILLISECONDS_UNIT = "Milliseconds"
#: CloudWatch: a metric name is 1 to 255 characters.
MAX_METRIC_NAME_LENGTH = 255
#: The variable Powertools read its default `service` dimension from; read the same way so the
#: series published before (with that dimension, where it is set) stay the same series.
SERVICE_NAME_ENV = "POWERTOOLS_SERVICE_NAME"

SeriesKey = tuple[DimensionKey, str]


class EmfMetrics:
    """Metrics printed as EMF documents on stdout (no API calls), flushed once per invocation.

    Values are buffered per (dimensions, name) and `flush` packs them into as few documents as
    EMF allows (`emf_documents`): one per invocation unless two series give one dimension two
    values. Each document is a CloudWatch Logs event billed per byte, so fewer documents cost
    less. Recording and flushing never raise: metrics must not fail a request; an invalid name,
    unit or value (NaN would make the whole document invalid JSON) is dropped with a warning.
    """

    def __init__(self, namespace: str = DEFAULT_METRICS_NAMESPACE, *,
                 service: str | None = None,
                 write_line: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._namespace = namespace
        self._service = service or os.environ.get(SERVICE_NAME_ENV) or None
        # Resolved at each call (not bound to today's sys.stdout): callers may redirect stdout.
        self._write_line = write_line or _print_line
        self._clock = clock
        self._lock = threading.Lock()
        self._buffer: dict[SeriesKey, tuple[str, list[float]]] = {}

    def _record(self, name: str, unit: str, value: float,
                dimensions: Mapping[str, str] | None) -> None:
        try:
            key = self._series_key(name, value, dimensions)
        except ValueError as refused:  # must not fail the request that measured it
            logger.warning("metric %r dropped: %s", name, refused)
            return
        with self._lock:
            held = self._buffer.setdefault(key, (unit, []))
            if held[0] != unit:
                logger.warning("metric %r dropped: recorded as %s before, now as %s",
                               name, held[0], unit)
                return
            held[1].append(float(value))

    def _series_key(self, name: str, value: float,
                    dimensions: Mapping[str, str] | None) -> SeriesKey:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_METRIC_NAME_LENGTH:
            raise ValueError(f"a metric name is 1 to {MAX_METRIC_NAME_LENGTH} characters")
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        # Dimensions with an empty value are left out, as Powertools did (it warned).
        named = {str(k): str(v) for k, v in (dimensions or {}).items() if v}
        if self._service and "service" not in named:
            named["service"] = self._service
        if len(named) > MAX_DIMENSIONS_PER_SET:
            raise ValueError(f"more than {MAX_DIMENSIONS_PER_SET} dimensions")
        return tuple(sorted(named.items())), name.strip()

    def count(self, name: str, value: float = 1,
              dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, COUNT_UNIT, value, dimensions)

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, COUNT_UNIT, value, dimensions)

    def timing(self, name: str, milliseconds: float,
               dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, MILLISECONDS_UNIT, milliseconds, dimensions)

    def flush(self) -> None:
        with self._lock:
            buffered, self._buffer = self._buffer, {}
        if not buffered:
            return
        try:
            lines = emf_lines(self._namespace, [
                Series(name, unit, dimensions, tuple(values))
                for (dimensions, name), (unit, values) in buffered.items()],
                int(self._clock() * 1000))
        except Exception:
            logger.warning("metrics flush failed", exc_info=True)
            return
        for line in lines:
            try:
                self._write_line(line)
            except Exception:
                logger.warning("metrics flush failed", exc_info=True)


def _print_line(line: str) -> None:
    # Lambda sends stdout to the function's log group, where CloudWatch reads EMF documents.
    print(line)
