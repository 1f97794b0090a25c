"""EMF metrics packed into as few documents as the format allows (issue 20: CloudWatch Logs bytes
per run), each series published with the same name, unit, dimensions and values as before."""

from __future__ import annotations

import json

from sluice_functions.adapters.aws import EmfMetrics
from sluice_functions.adapters.aws.emf_documents import (
    MAX_METRICS_PER_DOCUMENT,
    MAX_VALUES_PER_METRIC,
)

NAMESPACE = "SluiceTest"


def flushed(metrics: EmfMetrics, lines: list[str]) -> list[dict]:
    lines.clear()
    metrics.flush()
    return [json.loads(line) for line in lines]


def published(documents: list[dict]) -> list[tuple[str, str, tuple, list[float]]]:
    """What CloudWatch makes of the documents: (name, unit, dimensions, values) per series."""
    series = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple((name, document[name]) for name in dimension_set)
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]
                    series.append((metric["Name"], metric["Unit"], dimensions,
                                   values if isinstance(values, list) else [values]))
    return sorted(series)


def emf(**kwargs) -> tuple[EmfMetrics, list[str]]:
    lines: list[str] = []
    return EmfMetrics(NAMESPACE, write_line=lines.append, clock=lambda: 1_700_000_000.5,
                      **kwargs), lines


def test_a_claim_s_metrics_need_two_documents_not_four():
    # Given what a claim that starts its run records (two transitions, one per state)
    metrics, lines = emf()
    metrics.count("FlowRunTransitions", dimensions={"state": "PENDING"})
    metrics.count("EventsRecorded")
    metrics.count("FlowRunTransitions", dimensions={"state": "RUNNING"})
    metrics.count("FlowRunsClaimed", dimensions={"pool": "etl"})
    metrics.count("EventsRecorded")
    # When the invocation ends
    documents = flushed(metrics, lines)
    # Then only the second value of `state` needs a document of its own
    assert len(documents) == 2
    assert all(d["_aws"]["Timestamp"] == 1_700_000_000_500 for d in documents)
    # And every series is published as recorded
    assert published(documents) == [
        ("EventsRecorded", "Count", (), [1, 1]),
        ("FlowRunTransitions", "Count", (("state", "PENDING"),), [1]),
        ("FlowRunTransitions", "Count", (("state", "RUNNING"),), [1]),
        ("FlowRunsClaimed", "Count", (("pool", "etl"),), [1]),
    ]


def test_series_without_conflicts_share_one_document():
    # Given counts, a timing and a gauge under different dimension sets
    metrics, lines = emf()
    metrics.count("FlowRunsCreated", dimensions={"pool": "etl"})
    metrics.count("FlowRunsEnqueued", dimensions={"pool": "etl"})
    metrics.timing("ClaimLatency", 12.5)
    metrics.gauge("QueueDepth", 4, dimensions={"pool": "etl", "state": "SCHEDULED"})
    # When flushed
    documents = flushed(metrics, lines)
    # Then one document carries them, metrics of one dimension set in one directive
    (document,) = documents
    directives = document["_aws"]["CloudWatchMetrics"]
    assert [d["Dimensions"] for d in directives] == [[["pool"]], [[]], [["pool", "state"]]]
    assert published(documents) == [
        ("ClaimLatency", "Milliseconds", (), [12.5]),
        ("FlowRunsCreated", "Count", (("pool", "etl"),), [1]),
        ("FlowRunsEnqueued", "Count", (("pool", "etl"),), [1]),
        ("QueueDepth", "Count", (("pool", "etl"), ("state", "SCHEDULED")), [4]),
    ]


def test_one_name_with_equal_values_under_two_dimension_sets_is_one_member():
    # Given the dead-letter gauge of the only pool and the total, equal
    metrics, lines = emf()
    metrics.gauge("DeadLetterMessages", 3, dimensions={"pool": "etl"})
    metrics.gauge("DeadLetterMessages", 3)
    # When flushed
    documents = flushed(metrics, lines)
    # Then one directive publishes the member under both dimension sets
    (document,) = documents
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["pool"], []]
    assert published(documents) == [("DeadLetterMessages", "Count", (), [3]),
                                    ("DeadLetterMessages", "Count", (("pool", "etl"),), [3])]


def test_one_name_with_different_values_goes_to_another_document():
    # Given one gauge per pool and the total: two pools, so the values differ
    metrics, lines = emf()
    metrics.gauge("DeadLetterMessages", 1, dimensions={"pool": "a"})
    metrics.gauge("DeadLetterMessages", 2, dimensions={"pool": "b"})
    metrics.gauge("DeadLetterMessages", 3)
    # When flushed
    documents = flushed(metrics, lines)
    # Then each value list has its own member, in as few documents as that allows
    assert len(documents) == 3
    assert published(documents) == [("DeadLetterMessages", "Count", (), [3]),
                                    ("DeadLetterMessages", "Count", (("pool", "a"),), [1]),
                                    ("DeadLetterMessages", "Count", (("pool", "b"),), [2])]


def test_a_dimension_named_like_a_metric_does_not_overwrite_it():
    # Given a metric and a dimension of another metric with the same name
    metrics, lines = emf()
    metrics.count("pool", 5)
    metrics.count("FlowRunsCreated", dimensions={"pool": "etl"})
    # When flushed
    documents = flushed(metrics, lines)
    # Then they cannot share a document's top-level member
    assert len(documents) == 2
    assert published(documents) == [("FlowRunsCreated", "Count", (("pool", "etl"),), [1]),
                                    ("pool", "Count", (), [5])]


def test_the_format_s_limits_split_documents():
    # Given more metric names than one document lists, and one with more values than it holds
    metrics, lines = emf()
    for number in range(MAX_METRICS_PER_DOCUMENT + 1):
        metrics.count(f"Metric{number}")
    for _ in range(MAX_VALUES_PER_METRIC + 1):
        metrics.timing("Latency", 1.5)
    # When flushed
    documents = flushed(metrics, lines)
    # Then no document exceeds a limit and no value is lost
    assert len(documents) == 3
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert len(directive["Metrics"]) <= MAX_METRICS_PER_DOCUMENT
    series = published(documents)
    assert sum(len(values) for name, *_, values in series if name == "Latency") == (
        MAX_VALUES_PER_METRIC + 1)
    assert len({name for name, *_ in series}) == MAX_METRICS_PER_DOCUMENT + 2


def test_invalid_metrics_are_dropped_and_the_rest_published(caplog):
    # Given a NaN (invalid JSON in EMF), an empty name and a name used with two units
    metrics, lines = emf()
    metrics.count("Good")
    metrics.count("Bad", float("nan"))
    metrics.count(" ")
    metrics.timing("Good", 3.0)
    # When flushed
    documents = flushed(metrics, lines)
    # Then only the valid series is published, and each drop was logged
    assert published(documents) == [("Good", "Count", (), [1])]
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 3
    # And nothing is left for the next flush
    assert flushed(metrics, lines) == []


def test_the_service_dimension_powertools_added_is_kept(monkeypatch):
    # Given a function whose environment names a Powertools service (as the pool functions do)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sluice-pool-etl")
    metrics, lines = emf()
    metrics.count("Claims", dimensions={"pool": "etl", "empty": ""})
    # When flushed
    documents = flushed(metrics, lines)
    # Then the series carries `service` as before, and empty dimensions are left out
    assert published(documents) == [
        ("Claims", "Count", (("pool", "etl"), ("service", "sluice-pool-etl")), [1])]
