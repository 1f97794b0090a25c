"""EventBridge event patterns as Sluice evaluates them (`automations.patterns`), and the
EventBridge-shaped envelope of a Sluice event they are matched against."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sluice.models import EventResource, SluiceEvent
from sluice_functions.automations.on_event import envelope
from sluice_functions.automations.patterns import PatternError, check_pattern, matches

S3_EVENT = {
    "version": "0", "id": "e-1", "detail-type": "Object Created", "source": "aws.s3",
    "account": "123456789012", "region": "eu-central-1", "time": "2026-12-04T10:00:00Z",
    "resources": ["arn:aws:s3:::landing"],
    "detail": {"bucket": {"name": "landing"},
               "object": {"key": "incoming/day.csv", "size": 1200, "tags": ["a", "b"]},
               "reason": "PutObject", "requester": None},
}


@pytest.mark.parametrize("pattern", [
    {"source": ["aws.s3"]},
    {"source": ["aws.ec2", "aws.s3"]},
    {"detail-type": ["Object Created"], "detail": {"bucket": {"name": ["landing"]}}},
    {"detail": {"object": {"key": [{"prefix": "incoming/"}]}}},
    {"detail": {"object": {"key": [{"suffix": ".csv"}]}}},
    {"detail": {"object": {"key": [{"wildcard": "incoming/*.csv"}]}}},
    {"detail": {"reason": [{"equals-ignore-case": "putobject"}]}},
    {"detail": {"reason": [{"anything-but": ["CopyObject", "DeleteObject"]}]}},
    {"detail": {"reason": [{"anything-but": {"prefix": "Copy"}}]}},
    {"detail": {"object": {"size": [{"numeric": [">", 1000, "<=", 5000]}]}}},
    {"detail": {"object": {"size": [1200.0]}}},
    {"detail": {"object": {"etag": [{"exists": False}]}}},
    {"detail": {"object": {"key": [{"exists": True}]}}},
    {"detail": {"object": {"tags": ["b"]}}},
    {"detail": {"requester": [None]}},
    {"resources": ["arn:aws:s3:::landing"]},
    {"$or": [{"source": ["aws.ec2"]}, {"detail": {"reason": ["PutObject"]}}]},
])
def test_a_pattern_that_holds_matches(pattern):
    # Given a pattern EventBridge accepts, When matched against the S3 event, Then it matches
    check_pattern(pattern)
    assert matches(pattern, S3_EVENT)


@pytest.mark.parametrize("pattern", [
    {"source": ["aws.ec2"]},
    {"source": ["AWS.S3"]},
    {"detail": {"object": {"key": [{"prefix": "archive/"}]}}},
    {"detail": {"object": {"key": [{"wildcard": "*.json"}]}}},
    {"detail": {"reason": [{"anything-but": "PutObject"}]}},
    {"detail": {"missing": [{"anything-but": "x"}]}},
    {"detail": {"object": {"size": [{"numeric": ["<", 1000]}]}}},
    {"detail": {"object": {"size": ["1200"]}}},
    {"detail": {"object": {"key": [{"exists": False}]}}},
    {"detail": {"object": {"etag": [{"exists": True}]}}},
    {"detail": {"object": {"tags": ["c"]}}},
    {"detail": {"bucket": {"name": {"nested": ["x"]}}}},
    {"$or": [{"source": ["aws.ec2"]}, {"detail-type": ["Object Deleted"]}]},
])
def test_a_pattern_that_does_not_hold_does_not_match(pattern):
    check_pattern(pattern)
    assert not matches(pattern, S3_EVENT)


@pytest.mark.parametrize("pattern, named", [
    ({}, "pattern must be a non-empty JSON object"),
    ([], "pattern must be a non-empty JSON object"),
    ({"source": "aws.s3"}, "pattern.source must be a non-empty list"),
    ({"source": []}, "pattern.source must be a non-empty list"),
    ({"detail": {"key": [{"prefix": "a", "suffix": "b"}]}}, "pattern.detail.key: unknown matcher"),
    ({"detail": {"key": [{"regex": "a.*"}]}}, "unknown matcher"),
    ({"size": [{"numeric": [">", "ten"]}]}, "numeric takes comparison and number pairs"),
    ({"size": [{"numeric": [">"]}]}, "numeric takes comparison and number pairs"),
    ({"key": [{"exists": "yes"}]}, "exists takes true or false"),
    ({"key": [["nested"]]}, "lists do not nest"),
    ({"$or": [{"source": ["a"]}]}, "at least two alternative patterns"),
])
def test_an_unusable_pattern_is_refused_naming_the_field(pattern, named):
    with pytest.raises(PatternError, match=named):
        check_pattern(pattern)


def test_the_envelope_of_a_user_event_puts_its_payload_in_detail():
    # Given a user event whose payload names its source
    event = SluiceEvent(name="s3.object-created",
                        occurred=datetime(2026, 12, 4, 10, tzinfo=timezone.utc),
                        resource=EventResource(kind="bucket", id="landing"),
                        payload={"source": "aws.s3", "object": {"key": "incoming/a.csv"}})

    # When it is seen as an EventBridge event
    seen = envelope(event)

    # Then source, detail-type, detail, time and id are EventBridge's fields
    assert seen["source"] == "aws.s3" and seen["detail-type"] == "s3.object-created"
    assert seen["detail"]["object"] == {"key": "incoming/a.csv"}
    assert seen["time"] == "2026-12-04T10:00:00Z" and seen["id"] == event.id
    assert matches({"detail": {"object": {"key": [{"prefix": "incoming/"}]}}}, seen)


def test_the_envelope_source_defaults_to_sluice_user_or_sluice_for_own_events():
    at = datetime(2026, 12, 4, tzinfo=timezone.utc)
    resource = EventResource(kind="x", id="1")
    assert envelope(SluiceEvent(name="etl.done", occurred=at, resource=resource)
                    )["source"] == "sluice.user"
    assert envelope(SluiceEvent(name="sluice.flow-run.Failed", occurred=at, resource=resource)
                    )["source"] == "sluice"
