"""The events route's one-pass checks at their edges (issue 20): timestamps whose local year is
inside the range but whose instant is not, and the JSON depth limit inside a batch."""

from __future__ import annotations

import json

import pytest

from sluice_functions.api.request_checks import MAX_JSON_DEPTH


def _records(timestamp: str) -> list[dict]:
    return [{"id": f"t{i}", "flow_run_id": "fr-1", "task_name": "step", "name": f"step-{i}",
             "state": {"type": "COMPLETED", "timestamp": "2024-05-01T12:00:00Z"},
             "start_time": timestamp if i == 2 else None} for i in range(3)]


@pytest.mark.parametrize("when", [
    "1970-01-01T00:30:00+01:00",   # 1969-12-31T23:30Z
    "2999-12-31T23:30:00-01:00",   # 3000-01-01T00:30Z
])
def test_an_instant_outside_the_range_is_refused_whatever_its_local_year(api, when):
    # Given a batch whose third record started at such an instant
    # When it is posted
    answer = api.post("/flow-runs/fr-1/events", {"task_runs": _records(when)})

    # Then it is a 422 naming that field, and nothing is written
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["body", "task_runs", 2, "start_time"]
    assert answer.json["details"][0]["type"] == "timestamp_range"
    assert api.writes == []


@pytest.mark.parametrize("when", ["1970-01-01T00:30:00-01:00", "2999-12-31T22:30:00-01:00"])
def test_an_instant_just_inside_the_range_passes_the_timestamp_check(api, when):
    # Given a batch for a run that does not exist, with a timestamp just inside the range
    answer = api.post("/flow-runs/fr-1/events", {"task_runs": _records(when)})

    # Then the checks let it through to the use case (which does not find the run)
    assert answer.status == 404


def test_a_batch_nested_past_the_depth_limit_in_a_state_detail_is_a_400(api):
    # Given a record whose state details nest deeper than the limit
    records = _records("2024-05-01T12:00:00Z")
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    body = json.dumps({"task_runs": records}).replace(
        '"type": "COMPLETED"', '"type": "COMPLETED", "details": {"x": ' + deep + "}", 1)

    # When it is posted
    answer = api.post("/flow-runs/fr-1/events", body,
                      headers={"content-type": "application/json"})

    # Then it is refused as malformed JSON before anything runs
    assert (answer.status, answer.error) == (400, "malformed_json")
    assert api.writes == []
