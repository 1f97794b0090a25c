"""Creating, reading and enqueueing flow runs, against in-memory ports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_fakes import (
    NOW,
    InMemoryLogSink,
    InMemoryRunQueue,
    InMemoryRunStore,
    RecordingMetrics,
)
from sluice.exceptions import Conflict, PayloadTooLarge, ValidationError
from sluice.models import (
    MAX_PARAMETERS_BYTES,
    MAX_STATE_MESSAGE_CHARS,
    MAX_TAGS,
    ClaimRequest,
    FlowRunCreate,
    RunMessage,
    State,
    StateType,
    new_state,
)
from sluice_functions import service
from sluice_functions.ports import FlowRunFilter, LogSink, Metrics, RunQueue, RunStore


def create(ports, request: FlowRunCreate, now=NOW):
    return service.create_flow_run(request, store=ports.store, queue=ports.queue,
                                   metrics=ports.metrics, created_by="arn:aws:iam::1:user/ann",
                                   now=now)


def test_the_fakes_implement_the_ports():
    assert isinstance(InMemoryRunStore(), RunStore)
    assert isinstance(InMemoryRunQueue(), RunQueue)
    assert isinstance(InMemoryLogSink(), LogSink)
    assert isinstance(RecordingMetrics(), Metrics)


class TestCreate:
    def test_a_run_due_now_is_scheduled_and_enqueued_at_once(self, ports):
        run = ports.queued_run()
        assert run.state.type is StateType.SCHEDULED and run.state.scheduled_time == NOW
        assert (run.pool, run.scheduled_at, run.enqueued_at) == ("etl", NOW, NOW)
        assert run.created_by is None  # queued_run passes no identity
        [(pool, body, delay)] = ports.queue.sent
        message = RunMessage.model_validate_json(body)
        assert (pool, delay) == ("etl", 0)
        assert (message.flow_run_id, message.pool, message.attempt) == (run.id, "etl", 0)

    def test_a_run_due_in_ten_minutes_is_sent_with_a_delay(self, ports):
        # The delay is rounded down; the message carries the exact time for the worker.
        due = NOW + timedelta(minutes=10, milliseconds=300)
        ports.queued_run(scheduled_at=due)
        assert [delay for _, _, delay in ports.queue.sent] == [600]
        (_, body, _), = ports.queue.sent
        assert RunMessage.model_validate_json(body).scheduled_at == due

    def test_a_run_due_later_than_the_sqs_delay_limit_waits_for_a_scheduler_tick(self, ports):
        # Given a run due in 20 minutes: not sent yet
        run = ports.queued_run(scheduled_at=NOW + timedelta(minutes=20))
        assert ports.queue.sent == [] and run.enqueued_at is None
        # When the scheduler ticks 4 minutes later, it is still too early
        tick = lambda now: service.enqueue_due_runs(  # noqa: E731
            store=ports.store, queue=ports.queue, metrics=ports.metrics, now=now)
        assert tick(NOW + timedelta(minutes=4)) == 0
        # Then 6 minutes later it is sent, delayed to its second, and only once
        assert tick(NOW + timedelta(minutes=6)) == 1
        assert tick(NOW + timedelta(minutes=7)) == 0
        assert [delay for _, _, delay in ports.queue.sent] == [14 * 60]

    def test_the_callers_identity_is_recorded(self, ports):
        run = create(ports, FlowRunCreate(flow_name="adhoc"))
        assert run.created_by == "arn:aws:iam::1:user/ann"

    def test_a_deployment_run_takes_its_pool_retries_and_default_parameters(self, ports):
        deployment = ports.deployment(parameters={"day": "mon", "n": 1}, retries=2,
                                      retry_delay_seconds=5, tags=["nightly"])
        run = create(ports, FlowRunCreate(flow_name="etl", deployment_id=deployment.id,
                                          parameters={"n": 2}, tags=["manual"]))
        assert run.parameters == {"day": "mon", "n": 2}
        assert (run.pool, run.retries, run.retry_delay_seconds) == ("etl", 2, 5)
        assert run.tags == ["nightly", "manual"]

    def test_the_same_idempotency_key_creates_one_run_and_one_message(self, ports):
        first = ports.queued_run(idempotency_key="nightly@2024-05-01")
        second = ports.queued_run(idempotency_key="nightly@2024-05-01")
        assert first.id == second.id and len(ports.store.runs) == 1 and len(ports.queue.sent) == 1

    def test_a_client_id_created_twice_returns_the_first_run(self, ports):
        first = create(ports, FlowRunCreate(flow_name="adhoc", id="r-1"))
        second = create(ports, FlowRunCreate(flow_name="adhoc", id="r-1"))
        assert second.id == first.id and len(ports.store.runs) == 1

    def test_a_client_id_of_another_flows_run_conflicts(self, ports):
        create(ports, FlowRunCreate(flow_name="adhoc", id="r-1"))
        with pytest.raises(Conflict, match="already belongs"):
            create(ports, FlowRunCreate(flow_name="other", id="r-1"))

    def test_a_script_run_is_held_by_its_creator_and_is_not_enqueued(self, ports):
        lease = "script-lease-0123456789"
        run = create(ports, FlowRunCreate(flow_name="adhoc", state=State(type=StateType.PENDING),
                                          lease=lease))
        assert (run.run_count, run.pool, run.lease) == (1, None, None)  # the lease stays secret
        stored = ports.store.get_flow_run(run.id)
        assert (stored.lease, stored.heartbeat_at) == (lease, NOW)  # monitored from now on
        assert ports.queue.sent == []

    @pytest.mark.parametrize("state, extra, field", [
        ("RUNNING", {}, "state"),  # it would have skipped its lease
        ("COMPLETED", {}, "state"),
        ("PENDING", {}, "lease"),  # nobody would renew it
        ("SCHEDULED", {"lease": "x" * 20}, "lease"),
    ])
    def test_a_run_is_created_scheduled_or_pending_with_a_lease(self, ports, state, extra,
                                                                 field):
        with pytest.raises(ValidationError) as refused:
            create(ports, FlowRunCreate(flow_name="adhoc", state=State(type=StateType(state)),
                                        **extra))
        assert field in str(refused.value.details), refused.value.details

    def test_a_send_failure_keeps_the_run_for_the_next_scheduler_tick(self, ports):
        # Given a queue that refuses messages
        ports.queue.fail_sends = True
        run = ports.queued_run()
        # Then the run is stored, marked as not enqueued, and the failure is counted
        assert ports.store.get_flow_run(run.id).enqueued_at is None
        assert ports.metrics.total("EnqueueFailed") == 1
        # When the queue is back, the next tick sends it
        ports.queue.fail_sends = False
        sent = service.enqueue_due_runs(store=ports.store, queue=ports.queue,
                                        metrics=ports.metrics, now=NOW + timedelta(minutes=1))
        assert sent == 1

    def test_a_message_unclaimed_for_an_hour_is_sent_again(self, ports):
        ports.queued_run()
        tick = lambda now: service.enqueue_due_runs(  # noqa: E731
            store=ports.store, queue=ports.queue, metrics=ports.metrics, now=now)
        assert tick(NOW + timedelta(minutes=30)) == 0
        assert tick(NOW + timedelta(minutes=61)) == 1


class TestRefusedCreatesWriteNothing:
    @pytest.fixture
    def writes_before(self, ports):
        ports.deployment(parameter_schema={
            "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
        return ports.store.writes, len(ports.queue.sent)

    def assert_nothing_written(self, ports, writes_before):
        assert (ports.store.writes, len(ports.queue.sent)) == writes_before

    def test_parameters_over_the_size_limit(self, ports, writes_before):
        big = {"blob": "x" * MAX_PARAMETERS_BYTES}
        with pytest.raises(PayloadTooLarge, match="parameters"):
            create(ports, FlowRunCreate(flow_name="adhoc", parameters=big))
        self.assert_nothing_written(ports, writes_before)

    def test_too_many_tags(self, ports, writes_before):
        with pytest.raises(ValidationError, match="tags"):
            create(ports, FlowRunCreate(flow_name="adhoc", tags=[f"t{i}" for i in range(MAX_TAGS + 1)]))
        self.assert_nothing_written(ports, writes_before)

    def test_parameters_that_do_not_fit_the_deployment_schema(self, ports, writes_before):
        deployment = ports.store.get_deployment_by_name("etl", "nightly")
        with pytest.raises(ValidationError) as error:
            create(ports, FlowRunCreate(flow_name="etl", deployment_id=deployment.id,
                                        parameters={"n": "three"}))
        assert error.value.details[0]["loc"] == ["parameters", "n"]
        self.assert_nothing_written(ports, writes_before)

    def test_an_unknown_deployment(self, ports, writes_before):
        with pytest.raises(ValidationError, match="deployment_id"):
            create(ports, FlowRunCreate(flow_name="etl", deployment_id="nope"))
        self.assert_nothing_written(ports, writes_before)

    def test_a_deployment_of_another_flow(self, ports, writes_before):
        deployment = ports.store.get_deployment_by_name("etl", "nightly")
        with pytest.raises(ValidationError, match="runs flow 'etl'"):
            create(ports, FlowRunCreate(flow_name="other", deployment_id=deployment.id,
                                        parameters={"n": 1}))
        self.assert_nothing_written(ports, writes_before)

    @pytest.mark.parametrize("state_type", [StateType.COMPLETED, StateType.CANCELLING])
    def test_a_run_that_would_start_finished_or_cancelling(self, ports, writes_before, state_type):
        with pytest.raises(ValidationError, match="cannot be created"):
            create(ports, FlowRunCreate(flow_name="adhoc", state=State(type=state_type)))
        self.assert_nothing_written(ports, writes_before)

    def test_a_state_message_over_the_limit(self, ports, writes_before):
        # model_construct-built states skip pydantic's max_length; the service checks again
        state = new_state(StateType.RUNNING)
        object.__setattr__(state, "message", "m" * (MAX_STATE_MESSAGE_CHARS + 1))
        with pytest.raises(PayloadTooLarge, match="state.message"):
            create(ports, FlowRunCreate.model_construct(flow_name="adhoc", state=state,
                                                        parameters={}, tags=[]))
        self.assert_nothing_written(ports, writes_before)


class TestRead:
    def test_a_run_is_read_without_its_lease(self, ports):
        run = ports.queued_run()
        service.claim_flow_run(run.id, ClaimRequest(worker="w1"), store=ports.store, metrics=ports.metrics,
                               now=NOW)
        assert ports.store.get_flow_run(run.id).lease is not None
        assert service.get_flow_run(run.id, store=ports.store).lease is None
        page = service.list_flow_runs(FlowRunFilter(), store=ports.store)
        assert [r.lease for r in page.items] == [None]

    def test_runs_are_listed_newest_first_by_page(self, ports):
        for minutes in (1, 3, 2):
            create(ports, FlowRunCreate(flow_name="adhoc", id=f"r{minutes}",
                                        scheduled_at=NOW + timedelta(minutes=minutes)))
        first = service.list_flow_runs(FlowRunFilter(flow_name="adhoc"), store=ports.store, limit=2)
        rest = service.list_flow_runs(FlowRunFilter(flow_name="adhoc"), store=ports.store, limit=2,
                                      cursor=first.next_cursor)
        assert [r.id for r in first.items + rest.items] == ["r3", "r2", "r1"]
        assert rest.next_cursor is None

    @pytest.mark.parametrize("limit", [0, 201])
    def test_a_page_limit_out_of_range_is_refused(self, ports, limit):
        with pytest.raises(ValidationError, match="limit"):
            service.list_flow_runs(FlowRunFilter(), store=ports.store, limit=limit)

    def test_a_time_range_that_ends_before_it_starts_is_refused(self, ports):
        with pytest.raises(ValidationError, match="time range"):
            service.list_flow_runs(FlowRunFilter(scheduled_after=NOW + timedelta(1),
                                                 scheduled_before=NOW), store=ports.store)
