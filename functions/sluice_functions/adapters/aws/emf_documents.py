"""Packing buffered metrics into as few CloudWatch Embedded Metric Format documents as EMF allows.

Every EMF document is one CloudWatch Logs event, billed per byte ingested, so an invocation's
metrics go out in one document whenever the format can hold them: one document may carry several
metric directives, each with several dimension sets, and takes each dimension's value and each
metric's values from its top-level members. Two series therefore share a document unless they
give one dimension two values (`state` PENDING and RUNNING), or one metric name two different
value lists; such a series goes to the next document that can take it.
Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: EMF: a metric directive lists at most 100 metrics; applied to the whole document so that one
#: directive (metrics sharing their dimension sets) can never exceed it.
MAX_METRICS_PER_DOCUMENT = 100
#: EMF: a metric's value array holds at most 100 values; longer series are split.
MAX_VALUES_PER_METRIC = 100
#: EMF: a dimension set holds at most 30 dimension keys.
MAX_DIMENSIONS_PER_SET = 30

#: One series' dimensions: (name, value) pairs sorted by name.
DimensionKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Series:
    """The values recorded for one metric name under one dimension key, in recording order."""

    name: str
    unit: str
    dimensions: DimensionKey
    values: tuple[float, ...]


@dataclass
class _Document:
    dimension_values: dict[str, str] = field(default_factory=dict)
    #: metric name -> (unit, values): the document's top-level metric members.
    metrics: dict[str, tuple[str, tuple[float, ...]]] = field(default_factory=dict)
    #: metric name -> the dimension-name sets it is published under.
    dimension_sets: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def accepts(self, series: Series) -> bool:
        names = tuple(name for name, _ in series.dimensions)
        for name, value in series.dimensions:
            if self.dimension_values.get(name, value) != value or name in self.metrics:
                return False
        if series.name in self.dimension_values:
            return False
        held = self.metrics.get(series.name)
        if held is None:
            return len(self.metrics) < MAX_METRICS_PER_DOCUMENT
        # The same name with the same values under another dimension set: one member, two sets.
        return held == (series.unit, series.values) and names not in self.dimension_sets[
            series.name]

    def add(self, series: Series) -> None:
        self.dimension_values.update(series.dimensions)
        self.metrics[series.name] = (series.unit, series.values)
        self.dimension_sets.setdefault(series.name, []).append(
            tuple(name for name, _ in series.dimensions))

    def to_json(self, namespace: str, timestamp_ms: int) -> dict[str, Any]:
        # Metrics published under the same dimension sets share one directive.
        directives: dict[tuple[tuple[str, ...], ...], list[dict[str, str]]] = {}
        for name, (unit, _) in self.metrics.items():
            directives.setdefault(tuple(self.dimension_sets[name]), []).append(
                {"Name": name, "Unit": unit})
        document: dict[str, Any] = {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [
            {"Namespace": namespace, "Dimensions": [list(s) for s in sets], "Metrics": metrics}
            for sets, metrics in directives.items()]}}
        document.update(self.dimension_values)
        for name, (_, values) in self.metrics.items():
            compact = [_number(v) for v in values]
            document[name] = compact[0] if len(compact) == 1 else compact
        return document


def _number(value: float) -> float | int:
    # "1" rather than "1.0": the same value in fewer bytes.
    return int(value) if float(value).is_integer() else value


def _chunks(series: Series) -> Iterable[Series]:
    for start in range(0, len(series.values), MAX_VALUES_PER_METRIC):
        yield Series(series.name, series.unit, series.dimensions,
                     series.values[start:start + MAX_VALUES_PER_METRIC])


def emf_lines(namespace: str, series: Iterable[Series], timestamp_ms: int) -> list[str]:
    """The EMF documents (one JSON line each) that carry every value of `series`: as few as the
    format allows, one when no two series conflict (see the module docstring)."""
    documents: list[_Document] = []
    for piece in (chunk for one in series if one.values for chunk in _chunks(one)):
        target = next((d for d in documents if d.accepts(piece)), None)
        if target is None:
            target = _Document()
            documents.append(target)
        target.add(piece)
    return [json.dumps(d.to_json(namespace, timestamp_ms), separators=(",", ":"))
            for d in documents]
