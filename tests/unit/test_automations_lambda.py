"""The automations function (`handlers/automations.py`): EventBridge delivers each Sluice event
of the stack, at least once; the reactive automations act once per event."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools import Logger

from sluice.models import AutomationCreate, EventResource, SluiceEvent
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.automations import InMemoryAutomationStore
from sluice_functions.automations.engine import MAX_NESTING
from sluice_functions.automations.manage import create_automation
from sluice_functions.handlers.automations import make_handler
from sluice_functions.ports import ControlPlanePorts

T0 = datetime(2026, 12, 4, 10, tzinfo=UTC)


def ping(ident: str, name: str = "test.ping") -> SluiceEvent:
    return SluiceEvent(name=name, occurred=T0, resource=EventResource(kind="test", id=ident))


@pytest.fixture
def ports(tmp_path):
    built = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://local/queues/"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        events=SqliteEventStore(tmp_path / "events.db"), automations=InMemoryAutomationStore())
    service.ensure_pool("default", store=built.store, queue=built.queue)
    yield built
    for adapter in (built.store, built.queue, built.logs, built.events):
        adapter.close()


def pause_pool_automation(name: str) -> AutomationCreate:
    return AutomationCreate.model_validate({
        "name": f"on {name}", "trigger": {"type": "reactive", "match": {"names": [name]}},
        "actions": [{"type": "pause-pool", "pool": "default"}]})


def delivered(event: SluiceEvent) -> dict:
    """What EventBridge invokes the function with, from the publisher's PutEvents entry."""
    from sluice_functions.adapters.aws.event_bridge import EventBridgePublisher

    entry = EventBridgePublisher(None, stack_prefix="sluice").entry(event)
    return {"version": "0", "id": uuid.uuid4().hex, "detail-type": entry["DetailType"],
            "source": entry["Source"], "account": "123456789012", "region": "eu-west-1",
            "time": event.occurred.isoformat(), "resources": [],
            "detail": json.loads(entry["Detail"])}


class LambdaContext:
    function_name = "sluice-automations"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:sluice-automations"
    memory_limit_in_mb = 512
    aws_request_id = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def lambda_handler(ports):
    logger = Logger(service=f"t-{uuid.uuid4().hex}",
                    logger_handler=logging.StreamHandler(io.StringIO()))
    return make_handler(lambda: ports, logger=logger)


def test_the_lambda_acts_once_on_an_event_delivered_twice(ports):
    # Given an automation pausing the default pool on test.ping
    create_automation(pause_pool_automation("test.ping"), ports=ports, now=T0 - timedelta(days=1))
    handler = lambda_handler(ports)
    event = ping("p1")
    # When EventBridge delivers the event twice (at least once delivery)
    answers = [handler(delivered(event), LambdaContext()) for _ in range(2)]
    # Then the automation fired once, and the pool is paused
    assert [a["fired"] for a in answers] == [1, 0]
    assert service.get_pool("default", store=ports.store, queue=ports.queue).paused
    # and its result event was recorded through the function's own recorder
    assert "sluice.automation.triggered" in [
        e.name for e in ports.events.list_events(limit=20).items]
    assert ports.metrics.flush_count == 2


def test_the_lambda_drops_a_delivery_that_is_no_sluice_event(ports):
    handler = lambda_handler(ports)
    answer = handler({"detail-type": "Object Created", "source": "aws.s3",
                      "detail": {"bucket": {"name": "b"}}}, LambdaContext())
    assert answer == {"fired": 0, "event": None}
    assert ports.metrics.counter("AutomationEventsMalformed") == 1


def test_a_result_event_deep_enough_triggers_nothing_more(ports):
    # Automations acting on automations' results through EventBridge: the depth travels in
    # the event, so the bound holds across invocations.
    create_automation(pause_pool_automation("sluice.automation.triggered"), ports=ports,
                      now=T0 - timedelta(days=1))
    handler = lambda_handler(ports)
    shallow = SluiceEvent(name="sluice.automation.triggered", occurred=T0,
                          resource=EventResource(kind="automation", id="other"),
                          payload={"depth": MAX_NESTING - 1})
    deep = shallow.model_copy(update={"id": uuid.uuid4().hex,
                                      "payload": {"depth": MAX_NESTING}})
    assert handler(delivered(deep), LambdaContext())["fired"] == 0
    assert handler(delivered(shallow), LambdaContext())["fired"] == 1
