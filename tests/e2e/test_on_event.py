"""Deployments that run on events, end to end on the embedded server: `sluice deploy
--on-event PATTERN --param key='{{ ... }}'`, then `sluice events emit` an S3-shaped event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .harness import wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
S3_PATTERN = {"source": ["aws.s3"], "detail-type": ["s3.object-created"],
              "detail": {"bucket": {"name": ["landing"]},
                         "object": {"key": [{"prefix": "incoming/"}]}}}


def _s3_event(key: str) -> str:
    return json.dumps({"source": "aws.s3", "bucket": {"name": "landing"},
                       "object": {"key": key, "size": 12}})


def _runs_of(sluice, deployment_id: str) -> list[dict]:
    return sluice.api().get("/flow-runs", params={"deployment_id": deployment_id}
                            ).json()["items"]


def test_an_emitted_event_matching_the_pattern_starts_one_templated_run(sluice):
    # Given a deployment that runs on S3-style object-created events under incoming/
    deployed = sluice.cli_json(
        "deploy", "flows.py:stamp", "--name", "on-upload", "--project-dir", str(PROJECT),
        "--on-event", json.dumps(S3_PATTERN),
        "--param", "ledger={{ event.detail.object.key }}", "--json")
    assert deployed["on_event"]["pattern"] == S3_PATTERN
    assert deployed["on_event"]["parameters"] == {"ledger": "{{ event.detail.object.key }}"}
    assert deployed["parameters"] == {}
    inspected = sluice.cli("deployment", "inspect", "stamp/on-upload").stdout
    assert '"source":["aws.s3"]' in inspected.replace(" ", "").replace("\n", "")
    assert 'event params: ledger="{{ event.detail.object.key }}"' in inspected

    # When a matching event and a non-matching one (another prefix) are emitted
    sluice.cli("events", "emit", "s3.object-created", "--payload",
               _s3_event("incoming/2026-12-04.csv"))
    sluice.cli("events", "emit", "s3.object-created", "--payload", _s3_event("archive/old.csv"))

    # Then exactly one run exists, with the object's key as its parameter
    wait_for(lambda: _runs_of(sluice, deployed["id"]), 30, "the event's run")
    runs = _runs_of(sluice, deployed["id"])
    assert [r["parameters"] for r in runs] == [{"ledger": "incoming/2026-12-04.csv"}]


def test_an_invalid_pattern_is_refused_with_the_field_named(sluice):
    # When the pattern's leaf is a bare string instead of a list
    result = sluice.cli("deploy", "flows.py:stamp", "--name", "bad", "--project-dir",
                        str(PROJECT), "--on-event", '{"source": "aws.s3"}', check=False)

    # Then the deploy fails and says which field to fix
    assert result.returncode != 0
    assert "on_event.pattern.source" in result.stdout + result.stderr
