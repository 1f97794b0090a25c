"""The `Metrics` contract (functions/sluice_functions/ports.py), run against every adapter."""

from __future__ import annotations

from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.ports import Metrics


def test_the_adapter_implements_the_port(metrics):
    assert isinstance(metrics, Metrics)


def test_every_kind_of_metric_is_accepted_and_flush_never_raises(metrics):
    # Flushing with nothing recorded is what an idle Lambda invocation does
    metrics.flush()

    metrics.count("FlowRunsCreated")
    metrics.count("FlowRunsCreated", 3, {"pool": "gpu"})
    metrics.gauge("QueueDepth", 7, {"pool": "gpu"})
    metrics.timing("ClaimLatency", 12.5, {"pool": "gpu"})
    metrics.flush()
    metrics.flush()


def test_in_memory_metrics_read_back_what_was_recorded():
    # The memory adapter's own read-back API, which tests of the service assert on
    metrics = InMemoryMetrics()
    metrics.count("FlowRunsCreated")
    metrics.count("FlowRunsCreated", 2, {"pool": "gpu"})
    metrics.count("FlowRunsCreated", 4, {"pool": "gpu"})
    metrics.gauge("QueueDepth", 5, {"pool": "cpu"})
    metrics.gauge("QueueDepth", 9, {"pool": "gpu"})
    metrics.gauge("QueueDepth", 1, {"pool": "cpu"})
    metrics.timing("ClaimLatency", 3.0)
    metrics.timing("ClaimLatency", 4.0, {"pool": "gpu"})
    metrics.flush()

    assert metrics.counter("FlowRunsCreated") == 7
    assert metrics.counter("FlowRunsCreated", {"pool": "gpu"}) == 6
    assert metrics.counter("FlowRunsCreated", {"pool": "none"}) == 0
    assert metrics.gauge_value("QueueDepth", {"pool": "gpu"}) == 9
    assert metrics.gauge_value("QueueDepth") == 1  # the latest write of any series
    assert metrics.gauge_value("Missing") is None
    assert sorted(metrics.timings("ClaimLatency")) == [3.0, 4.0]
    assert metrics.names() == {"FlowRunsCreated", "QueueDepth", "ClaimLatency"}
    assert metrics.flush_count == 1

    metrics.reset()
    assert metrics.names() == set() and metrics.counter("FlowRunsCreated") == 0
