"""A deployment's own automations (`triggers=[...]`) and its runs on events (`on_event`), on
the embedded adapters: created and replaced with the deployment, deleted with it; a matching
recorded event starts one templated run, however often it is recorded."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sluice.automations import notify, proactive, reactive, match, run_deployment
from sluice.models import DeploymentCreate, EventResource, SluiceEvent
from sluice.models.deployments import DeploymentTrigger, OnEvent
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.automations import automation_store
from sluice_functions.automations.deployment_triggers import owned_by
from sluice_functions.ports import ControlPlanePorts, FlowRunFilter
from sluice_functions.automations import InlineDispatcher, InMemoryAutomationStore
from sluice_functions.service.event_log import attach_recorder, record

T0 = datetime(2026, 12, 4, 10, tzinfo=timezone.utc)
PATTERN = {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "incoming/"}]}}}


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


def deploy(ports, name="nightly", **fields):
    request = DeploymentCreate(flow_name="etl", name=name, entrypoint="flows.py:etl", **fields)
    return service.create_deployment(request, store=ports.store, queue=ports.queue, now=T0)


def automations(ports):
    return automation_store(ports).list_automations()


def runs(ports, deployment_id):
    return ports.store.list_flow_runs(FlowRunFilter(deployment_id=deployment_id),
                                      limit=50).items


def uploaded(key: str, event_id: str | None = None) -> SluiceEvent:
    extra = {"id": event_id} if event_id else {}
    return SluiceEvent(name="s3.object-created", occurred=T0, **extra,
                       resource=EventResource(kind="bucket", id="landing"),
                       payload={"source": "aws.s3", "object": {"key": key}})


def test_triggers_become_automations_named_after_the_deployment(ports):
    # Given a deployment with two triggers: a bare one and one with its own actions
    deployment = deploy(ports, triggers=[
        DeploymentTrigger(trigger=reactive("upstream.done"),
                          actions=[run_deployment("@this", day="{{ event.payload.day }}")]),
        DeploymentTrigger(trigger=proactive(match("sluice.flow-run.Completed"),
                                            daily_at="06:00"),
                          actions=[notify("slack", url_secret="slack-url")]),
    ])

    # Then each is an automation `<flow>/<deployment>#<n>` owned by it
    owned = automations(ports)
    assert [a.name for a in owned] == ["etl/nightly#1", "etl/nightly#2"]
    assert all(owned_by(a, deployment.id) for a in owned)
    # and "@this" runs this very deployment
    assert owned[0].actions[0].deployment == deployment.id


def test_owned_automations_name_their_owner_and_cannot_be_deleted_alone(ports):
    # Given a deployment with a trigger described by the user, and an automation of the user's
    from sluice.exceptions import Conflict
    from sluice.models import AutomationCreate
    from sluice_functions.automations.manage import create_automation, delete_automation

    deployment = deploy(ports, triggers=[DeploymentTrigger(
        trigger=reactive("a"), actions=[run_deployment("@this")], description="when a")])
    mine = create_automation(AutomationCreate(name="mine", trigger=reactive("c"),
                                              actions=[run_deployment("etl/nightly")]),
                             ports=ports)

    # Then the owned one names its owner in `owner` and keeps the user's description as is
    owned = next(a for a in automations(ports) if a.name == "etl/nightly#1")
    assert owned.owner == f"deployment:{deployment.id}"
    assert owned.description == "when a"
    assert mine.owner is None and not owned_by(mine, deployment.id)

    # When the owned one is deleted on its own, Then it is refused, saying what to do instead
    with pytest.raises(Conflict, match="remove the trigger and deploy again"):
        delete_automation(owned.id, ports=ports)
    # and the user's own is deleted as before
    delete_automation(mine.id, ports=ports)
    assert [a.name for a in automations(ports)] == ["etl/nightly#1"]


def test_an_automation_marked_by_the_previous_release_is_still_owned_and_loses_its_mark(ports):
    # Given an automation stored by the previous release: owner only as a description mark
    from sluice.models import Automation

    deployment = deploy(ports, triggers=[DeploymentTrigger(trigger=reactive("a"),
                                                           actions=[run_deployment("@this")])])
    (current,) = automations(ports)
    legacy = current.model_copy(update={
        "owner": None, "description": f"[deployment {deployment.id}] when a"})
    automation_store(ports).put_automation(Automation.model_validate(legacy.model_dump()))
    assert owned_by(automations(ports)[0], deployment.id)

    # When the deployment is deployed again
    deploy(ports, triggers=[DeploymentTrigger(trigger=reactive("a"),
                                              actions=[run_deployment("@this")],
                                              description="when a")])

    # Then the same automation (same id) now names its owner, and the mark is gone
    (again,) = automations(ports)
    assert again.id == current.id
    assert again.owner == f"deployment:{deployment.id}" and again.description == "when a"


def test_a_run_deployment_action_without_a_deployment_runs_the_owner(ports):
    deployment = deploy(ports, triggers=[{
        "trigger": {"type": "reactive", "match": {"names": ["upstream.done"]}},
        "actions": [{"type": "run-deployment"}]}])
    (owned,) = automations(ports)
    assert owned.actions[0].deployment == deployment.id


def test_deploying_again_replaces_the_triggers_keeping_ids_and_deleting_leftovers(ports):
    # Given a deployment with two triggers, and a user's own automation
    two = [DeploymentTrigger(trigger=reactive("a"), actions=[run_deployment("@this")]),
           DeploymentTrigger(trigger=reactive("b"), actions=[run_deployment("@this")])]
    deploy(ports, triggers=two)
    first_id = automations(ports)[0].id
    from sluice.models import AutomationCreate
    from sluice_functions.automations.manage import create_automation

    create_automation(AutomationCreate(name="mine", trigger=reactive("c"),
                                       actions=[run_deployment("etl/nightly")]), ports=ports)

    # When it is deployed again with one (changed) trigger
    deploy(ports, triggers=[DeploymentTrigger(trigger=reactive("a2"),
                                              actions=[run_deployment("@this")])])

    # Then #1 is replaced in place, #2 is gone, and the user's automation stays
    by_name = {a.name: a for a in automations(ports)}
    assert sorted(by_name) == ["etl/nightly#1", "mine"]
    assert by_name["etl/nightly#1"].id == first_id
    assert by_name["etl/nightly#1"].trigger.match.names == ["a2"]


def test_deleting_the_deployment_deletes_its_automations_only(ports):
    deploy(ports, triggers=[DeploymentTrigger(trigger=reactive("a"),
                                              actions=[run_deployment("@this")])])
    deploy(ports, name="other", triggers=[DeploymentTrigger(
        trigger=reactive("b"), actions=[run_deployment("@this")])])

    service.delete_deployment("etl/nightly", store=ports.store)

    assert [a.name for a in automations(ports)] == ["etl/other#1"]


def test_a_matching_event_starts_one_run_with_templated_parameters(ports):
    # Given a deployment that runs on uploads under incoming/
    deployment = deploy(ports, parameters={"mode": "full"}, on_event=OnEvent(
        pattern=PATTERN, parameters={"key": "{{ event.detail.object.key }}"}))

    # When a matching upload is recorded twice (a redelivery) and another one elsewhere
    event = uploaded("incoming/a.csv")
    record([event], ports=ports, now=T0)
    record([event], ports=ports, now=T0)
    record([uploaded("archive/b.csv")], ports=ports, now=T0)

    # Then one run exists, its parameters rendered over the event and merged over the defaults
    (run,) = runs(ports, deployment.id)
    assert run.parameters == {"mode": "full", "key": "incoming/a.csv"}
    assert run.created_by == "on-event"


def test_a_paused_deployment_does_not_run_on_events(ports):
    deployment = deploy(ports, paused=True, on_event=OnEvent(pattern=PATTERN))
    record([uploaded("incoming/a.csv")], ports=ports, now=T0)
    assert runs(ports, deployment.id) == []


def test_a_template_that_does_not_render_starts_nothing_and_is_counted(ports):
    deployment = deploy(ports, on_event=OnEvent(
        pattern=PATTERN, parameters={"key": "{{ event.detail.missing.key }}"}))
    record([uploaded("incoming/a.csv")], ports=ports, now=T0)
    assert runs(ports, deployment.id) == []
    assert ports.metrics.counter("OnEventRunsFailed") == 1


def test_an_unusable_pattern_is_refused_before_anything_is_written(ports):
    from sluice.exceptions import ValidationError

    with pytest.raises(ValidationError, match="on_event.pattern.source"):
        deploy(ports, on_event=OnEvent(pattern={"source": "aws.s3"}))
    assert ports.store.list_deployments(limit=10).items == []
