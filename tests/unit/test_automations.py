"""Automations on the embedded adapters (SQLite stores, in-memory metrics, a recording webhook):
matching, thresholds and windows, grouping, proactive triggers, exactly-once firing, actions
through the service layer and the template sandbox."""

from __future__ import annotations

import hmac
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from sluice.models import (
    AutomationCreate,
    DeploymentCreate,
    EventMatch,
    EventResource,
    SluiceEvent,
)
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.automations import ActionRuntime, evaluate_proactive, on_events, signature
from sluice_functions.automations import InlineDispatcher, InMemoryAutomationStore
from sluice_functions.automations.manage import create_automation, set_enabled
from sluice_functions.automations.windows import latest_deadline
from sluice_functions.ports import ControlPlanePorts, FlowRunFilter
from sluice_functions.service.event_log import attach_recorder

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
HOOK_URL = "https://hooks.example.test/sluice"


class Webhooks:
    """The outside world of the actions: secrets and a receiver of POSTs."""

    def __init__(self) -> None:
        self.secrets = {"hook-url": HOOK_URL, "hook-key": "s3cr3t", "slack-url": HOOK_URL}
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.posts.append((url, body, headers))
        return 204

    def runtime(self) -> ActionRuntime:
        return ActionRuntime(secret=self.secrets.get, post=self.post,
                             sns_client=lambda region: None)

    def messages(self) -> list[dict]:
        return [json.loads(body) for _, body, _ in self.posts]


@pytest.fixture
def ports(tmp_path):
    ports = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://local/queues/"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        events=SqliteEventStore(tmp_path / "events.db"),
        automations=InMemoryAutomationStore())
    # Automations act inline, before a recording call returns (the server uses a thread).
    attach_recorder(ports, InlineDispatcher(ports))
    service.ensure_pool("default", store=ports.store, queue=ports.queue)
    return ports


@pytest.fixture
def hooks():
    return Webhooks()


def event(name: str, at: datetime, *, run: str = "run-1", tags: tuple[str, ...] = (),
          deployment: str | None = None, payload: dict | None = None) -> SluiceEvent:
    related = [EventResource(kind="tag", id=tag) for tag in tags]
    if deployment:
        related.append(EventResource(kind="deployment", id=f"id-{deployment}", name=deployment))
    return SluiceEvent(name=name, occurred=at, resource=EventResource(kind="flow-run", id=run),
                       related=related, payload=payload or {})


def automation(ports, trigger: dict, actions: list[dict] | None = None, *, at=T0 - timedelta(days=2)):
    request = AutomationCreate.model_validate({
        "name": "on failure", "trigger": trigger,
        "actions": actions or [{"type": "notify", "via": "webhook", "url_secret": "hook-url",
                                "hmac_secret": "hook-key"}]})
    return create_automation(request, ports=ports, now=at)


def happen(ports, hooks, *events: SluiceEvent) -> int:
    """Store the events and hand them to the automations, as `event_log.record` does."""
    ports.events.append(list(events))
    return on_events(list(events), ports=ports, now=events[-1].occurred, runtime=hooks.runtime())


def tick(ports, hooks, now: datetime) -> int:
    return evaluate_proactive(ports=ports, now=now, runtime=hooks.runtime())


# ---- matching -------------------------------------------------------------------------------


def test_a_match_needs_every_criterion_and_names_take_wildcards():
    match = EventMatch(names=["sluice.flow-run.*"], related=["tag:critical",
                                                             "deployment:etl/nightly"])
    hit = event("sluice.flow-run.Failed", T0, tags=("critical",), deployment="etl/nightly")
    assert match.matches(hit)
    assert not match.matches(event("sluice.flow-run.Failed", T0, tags=("critical",)))
    assert not match.matches(event("sluice.pool.paused", T0, tags=("critical",),
                                   deployment="etl/nightly"))
    assert EventMatch(names=["*.Failed"]).matches(hit)
    assert not EventMatch(names=["sluice.flow-run.Fail"]).matches(hit)  # names are not prefixes


def test_a_malformed_trigger_is_refused_with_the_fix():
    with pytest.raises(ValidationError, match="within_seconds"):
        AutomationCreate.model_validate({"name": "x", "trigger": {"type": "reactive",
                                                                  "threshold": 3},
                                         "actions": [{"type": "cancel-run"}]})
    with pytest.raises(ValidationError, match="url_secret"):
        AutomationCreate.model_validate({"name": "x", "trigger": {"type": "reactive"},
                                         "actions": [{"type": "notify", "via": "slack"}]})
    with pytest.raises(ValidationError, match="Europe/Berlin"):
        AutomationCreate.model_validate({"name": "x", "trigger": {
            "type": "proactive", "expect": {}, "daily_at": "03:00", "timezone": "Mars/Olympus"},
            "actions": [{"type": "cancel-run"}]})


# ---- reactive -------------------------------------------------------------------------------


def test_a_reactive_trigger_notifies_once_with_a_valid_signature(ports, hooks):
    # Given an automation notifying a signed webhook on any failed run
    automation(ports, {"type": "reactive", "match": {"names": ["sluice.flow-run.Failed"]}})
    failed = event("sluice.flow-run.Failed", T0, payload={"message": "boom"})
    # When the failure is recorded, and handed over again (a retry of the same event)
    assert happen(ports, hooks, failed) == 1
    assert on_events([failed], ports=ports, now=T0, runtime=hooks.runtime()) == 0
    # Then one POST arrived, signed with the HMAC of its body
    assert len(hooks.posts) == 1
    _, body, headers = hooks.posts[0]
    expected = hmac.new(b"s3cr3t", body, hashlib.sha256).hexdigest()
    assert headers["x-sluice-signature"] == f"sha256={expected}"
    assert signature("s3cr3t", body) == expected
    message = json.loads(body)
    assert message["event"]["id"] == failed.id
    assert "boom" in message["message"]


def test_other_events_do_not_trigger(ports, hooks):
    automation(ports, {"type": "reactive", "match": {"names": ["sluice.flow-run.Failed"]}})
    assert happen(ports, hooks, event("sluice.flow-run.Completed", T0)) == 0
    assert hooks.posts == []


def test_a_threshold_fires_when_reached_within_the_window_and_counts_afresh(ports, hooks):
    # Given "3 failures within 60 s"
    automation(ports, {"type": "reactive", "match": {"names": ["sluice.flow-run.Failed"]},
                       "threshold": 3, "within_seconds": 60})
    fail = lambda seconds, run: event("sluice.flow-run.Failed",  # noqa: E731
                                      T0 + timedelta(seconds=seconds), run=run)
    # When two failures happen, then a third 100 s after the first (out of its window)
    assert happen(ports, hooks, fail(0, "a")) == 0
    assert happen(ports, hooks, fail(10, "b")) == 0
    assert happen(ports, hooks, fail(100, "c")) == 0
    # Then nothing fired; two more within 60 s of the third make three: it fires once
    assert happen(ports, hooks, fail(110, "d")) == 0
    assert happen(ports, hooks, fail(120, "e")) == 1
    # And the next failure starts a new count rather than firing again
    assert happen(ports, hooks, fail(125, "f")) == 0
    assert len(hooks.posts) == 1


def test_grouping_by_resource_counts_each_resource_apart(ports, hooks):
    automation(ports, {"type": "reactive", "match": {"names": ["sluice.flow-run.AwaitingRetry"]},
                       "threshold": 2, "within_seconds": 600, "group_by": "resource"})
    retry = lambda seconds, run: event("sluice.flow-run.AwaitingRetry",  # noqa: E731
                                       T0 + timedelta(seconds=seconds), run=run)
    assert happen(ports, hooks, retry(0, "a")) == 0
    assert happen(ports, hooks, retry(1, "b")) == 0  # one each: no group has two
    assert happen(ports, hooks, retry(2, "a")) == 1
    assert [m["event"]["resource"]["id"] for m in hooks.messages()] == ["a"]


def test_a_paused_automation_ignores_events(ports, hooks):
    paused = automation(ports, {"type": "reactive"})
    set_enabled(paused.id, False, ports=ports, now=T0)
    assert happen(ports, hooks, event("anything", T0)) == 0


def test_run_deployment_takes_parameters_templated_from_the_event(ports, hooks):
    # Given a deployment and an automation running it on an S3-style user event
    service.create_deployment(DeploymentCreate(flow_name="ingest", name="on-upload",
                                               entrypoint="flows.py:ingest"),
                              store=ports.store, queue=ports.queue, now=T0)
    automation(ports, {"type": "reactive", "match": {"names": ["s3.object-created"]}},
               [{"type": "run-deployment", "deployment": "ingest/on-upload",
                 "parameters": {"key": "{{ event.payload.detail.object.key }}", "n": 3}}])
    upload = SluiceEvent(name="s3.object-created", occurred=T0,
                         resource=EventResource(kind="s3-object", id="bucket/in/a.csv"),
                         payload={"detail": {"object": {"key": "in/a.csv"}}})
    # When it happens twice (a redelivery)
    happen(ports, hooks, upload)
    happen(ports, hooks, upload)
    # Then exactly one run exists, with the templated parameter
    runs = ports.store.list_flow_runs(FlowRunFilter(flow_name="ingest"), limit=10).items
    assert [r.parameters for r in runs] == [{"key": "in/a.csv", "n": 3}]
    assert ports.metrics.counter("AutomationsTriggered") == 1


def test_the_template_sandbox_refuses_internals_and_the_action_fails_cleanly(ports, hooks):
    # Given a notification whose body reaches for Python internals
    automation(ports, {"type": "reactive"},
               [{"type": "notify", "via": "webhook", "url_secret": "hook-url",
                 "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
                {"type": "notify", "via": "slack", "url_secret": "slack-url",
                 "body": "{{ event.__class__ }}"},
                {"type": "notify", "via": "slack", "url_secret": "slack-url",
                 "body": "run {{ event.resource.id }} failed"}])
    # When an event triggers it
    assert happen(ports, hooks, event("user.thing", T0)) == 1
    # Then the two unsafe templates failed (nothing posted for them), the third went out
    assert [json.loads(b)["text"].split("\n")[1] for _, b, _ in hooks.posts] == [
        "run run-1 failed"]
    assert ports.metrics.counter("AutomationActionsFailed") == 2
    failures = ports.events.list_events(names=["sluice.automation.action-failed"],
                                        limit=10).items
    assert len(failures) == 2
    assert all("template of body failed" in f.payload["error"] for f in failures)


def test_a_missing_secret_fails_the_action_naming_the_fix(ports, hooks):
    automation(ports, {"type": "reactive"},
               [{"type": "notify", "via": "webhook", "url_secret": "nowhere"}])
    happen(ports, hooks, event("user.thing", T0))
    failure, = ports.events.list_events(names=["sluice.automation.action-failed"],
                                        limit=10).items
    assert "sluice secret set nowhere" in failure.payload["error"]


# ---- proactive ------------------------------------------------------------------------------

NIGHTLY_DONE = {"names": ["sluice.flow-run.Completed"], "related": ["deployment:etl/nightly"]}


def test_latest_deadline_follows_the_wall_clock_of_the_timezone():
    # 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer
    assert latest_deadline("03:00", "Europe/Berlin", T0) == datetime(2026, 3, 2, 2, 0,
                                                                     tzinfo=timezone.utc)
    summer = datetime(2026, 7, 1, 0, 30, tzinfo=timezone.utc)
    assert latest_deadline("03:00", "Europe/Berlin", summer) == datetime(
        2026, 6, 30, 1, 0, tzinfo=timezone.utc)


def test_a_missed_deadline_fires_once_however_many_ticks(ports, hooks):
    # Given "nightly Completed by 03:00 Europe/Berlin", and no completion that night
    automation(ports, {"type": "proactive", "expect": NIGHTLY_DONE, "daily_at": "03:00",
                       "timezone": "Europe/Berlin"})
    happen(ports, hooks, event("sluice.flow-run.Failed", T0 - timedelta(hours=11),
                               deployment="etl/nightly"))
    # When the monitor ticks several times after the deadline
    fired = [tick(ports, hooks, T0 + timedelta(minutes=m)) for m in (0, 1, 2)]
    # Then it fired once, about the absence
    assert fired == [1, 0, 0]
    message, = hooks.messages()
    assert message["event"]["name"] == "sluice.automation.expected-missing"
    assert message["event"]["payload"]["window_end"] == "2026-03-02T02:00:00+00:00"


def test_a_deadline_met_never_fires(ports, hooks):
    automation(ports, {"type": "proactive", "expect": NIGHTLY_DONE, "daily_at": "03:00",
                       "timezone": "Europe/Berlin"})
    happen(ports, hooks, event("sluice.flow-run.Completed", T0 - timedelta(hours=11),
                               deployment="etl/nightly"))
    assert [tick(ports, hooks, T0 + timedelta(minutes=m)) for m in (0, 1)] == [0, 0]
    assert hooks.posts == []


def test_a_deadline_before_the_automation_existed_does_not_fire(ports, hooks):
    automation(ports, {"type": "proactive", "expect": NIGHTLY_DONE, "daily_at": "03:00",
                       "timezone": "Europe/Berlin"}, at=T0 - timedelta(hours=1))
    assert tick(ports, hooks, T0) == 0


def test_after_and_within_expects_a_completion_per_run(ports, hooks):
    # Given "each run that starts must complete within 10 minutes", per run
    automation(ports, {"type": "proactive", "after": {"names": ["sluice.flow-run.Running"]},
                       "expect": {"names": ["sluice.flow-run.Completed"]},
                       "within_seconds": 600, "group_by": "resource"},
               [{"type": "cancel-run"}, {"type": "notify", "via": "webhook",
                                         "url_secret": "hook-url"}])
    happen(ports, hooks, event("sluice.flow-run.Running", T0, run="slow"))
    happen(ports, hooks, event("sluice.flow-run.Running", T0, run="quick"))
    happen(ports, hooks, event("sluice.flow-run.Completed", T0 + timedelta(minutes=5),
                               run="quick"))
    # When ticks come before and after the window closed
    assert tick(ports, hooks, T0 + timedelta(minutes=9)) == 0
    assert tick(ports, hooks, T0 + timedelta(minutes=11)) == 1
    assert tick(ports, hooks, T0 + timedelta(minutes=12)) == 0
    # Then only the slow run was reported (its cancel failed: no such run in this store)
    assert [m["event"]["resource"]["id"] for m in hooks.messages()] == ["slow"]
    failure, = ports.events.list_events(names=["sluice.automation.action-failed"],
                                        limit=10).items
    assert "cancel-run failed" in failure.payload["error"]


def test_silence_fires_once_per_window_of_silence(ports, hooks):
    automation(ports, {"type": "proactive", "expect": {"names": ["sluice.flow-run.Completed"]},
                       "within_seconds": 3600}, at=T0)
    happen(ports, hooks, event("sluice.flow-run.Completed", T0 + timedelta(minutes=30)))
    assert tick(ports, hooks, T0 + timedelta(minutes=80)) == 0  # one 50 minutes ago
    assert tick(ports, hooks, T0 + timedelta(minutes=100)) == 1  # none for an hour
    assert tick(ports, hooks, T0 + timedelta(minutes=101)) == 0


def test_the_python_builders_make_the_same_automation_as_a_file():
    from sluice.automations import Automation, match, notify, proactive, reactive, run_deployment

    built = Automation(name="b", trigger=reactive("s3.*", related=["tag:x"], threshold=2,
                                                  within_seconds=60, per_resource=True),
                       actions=[notify("webhook", url_secret="u", hmac_secret="k"),
                                run_deployment("ingest/on-upload", key="{{ event.id }}")])
    assert built.trigger.group_by == "resource" and built.trigger.match.related == ["tag:x"]
    assert built.actions[1].parameters == {"key": "{{ event.id }}"}
    late = proactive(match("sluice.flow-run.Completed"), daily_at="03:00",
                     timezone="Europe/Berlin")
    assert AutomationCreate.model_validate(
        {"name": "n", "trigger": late.model_dump(), "actions": [{"type": "cancel-run"}]}
    ).trigger.daily_at == "03:00"
