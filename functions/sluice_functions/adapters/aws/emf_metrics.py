"""`Metrics` as CloudWatch Embedded Metric Format through Powertools."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from ...config import DEFAULT_METRICS_NAMESPACE

logger = logging.getLogger(__name__)

DimensionKey = tuple[tuple[str, str], ...]


class EmfMetrics:
    """Metrics printed as EMF log lines that CloudWatch turns into metrics (no API calls).

    An EMF document carries one set of dimension values, so metrics are buffered per dimension
    set, each in its own Powertools `EphemeralMetrics` (the `Metrics` class keeps its buffer in
    class attributes shared by every instance, which would make this adapter a global).
    Recording and flushing never raise: metrics must not fail a request.
    """

    def __init__(self, namespace: str = DEFAULT_METRICS_NAMESPACE, *,
                 service: str | None = None) -> None:
        self._namespace = namespace
        self._service = service
        self._buffers: dict[DimensionKey, EphemeralMetrics] = {}

    def _buffer(self, dimensions: Mapping[str, str] | None) -> EphemeralMetrics:
        # Powertools drops (with a warning) dimensions whose value is empty; do so quietly.
        key: DimensionKey = tuple(sorted((name, str(value))
                                         for name, value in (dimensions or {}).items() if value))
        if key not in self._buffers:
            buffer = EphemeralMetrics(namespace=self._namespace, service=self._service)
            for name, value in key:
                buffer.add_dimension(name=name, value=value)
            self._buffers[key] = buffer
        return self._buffers[key]

    def _record(self, name: str, unit: MetricUnit, value: float,
                dimensions: Mapping[str, str] | None) -> None:
        try:
            self._buffer(dimensions).add_metric(name=name, unit=unit, value=value)
        except Exception:  # an invalid name or value must not fail the request that measured it
            logger.warning("metric %s dropped", name, exc_info=True)

    def count(self, name: str, value: float = 1,
              dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, MetricUnit.Count, value, dimensions)

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, MetricUnit.Count, value, dimensions)

    def timing(self, name: str, milliseconds: float,
               dimensions: Mapping[str, str] | None = None) -> None:
        self._record(name, MetricUnit.Milliseconds, milliseconds, dimensions)

    def flush(self) -> None:
        # Powertools clears a buffer's dimensions on flush, so flushed buffers are dropped and
        # made afresh by the next metric.
        buffers, self._buffers = self._buffers, {}
        for buffer in buffers.values():
            if not buffer.metric_set:
                continue
            try:
                buffer.flush_metrics()
            except Exception:
                logger.warning("metrics flush failed", exc_info=True)
