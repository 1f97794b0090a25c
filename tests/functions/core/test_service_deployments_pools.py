"""Deployments (upsert, read by id or name, update, delete, run) and pools (with live figures)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_fakes import NOW
from sluice.exceptions import NotFound, ValidationError
from sluice.models import (
    ClaimRequest,
    DeploymentCreate,
    DeploymentRunRequest,
    DeploymentUpdate,
    PoolCreate,
    Schedule,
    Worker,
)
from sluice_functions import service

SCHEMA = {
    "type": "object",
    "properties": {"day": {"type": "string", "enum": ["mon", "tue"]}, "n": {"type": "integer"}},
    "required": ["day", "n"],
    "additionalProperties": False,
}


def deploy(ports, **fields):
    values = dict(flow_name="etl", name="nightly", entrypoint="flows.py:etl", pool="reports")
    values.update(fields)
    return service.create_deployment(DeploymentCreate(**values), store=ports.store,
                                     queue=ports.queue, created_by="ann", now=NOW)


class TestDeployments:
    def test_deploying_creates_the_pool_and_its_queue(self, ports):
        deploy(ports)
        assert ports.store.get_pool("reports").queue_url == "memory://reports"
        assert "reports" in ports.queue.queues

    def test_deploying_again_updates_the_same_deployment(self, ports):
        first = deploy(ports, description="v1")
        second = deploy(ports, description="v2")
        assert second.id == first.id and second.description == "v2"
        assert second.created_by == "ann"

    def test_a_deployment_is_found_by_id_or_by_flow_and_name(self, ports):
        deployment = deploy(ports)
        assert service.get_deployment("etl/nightly", store=ports.store).id == deployment.id
        assert service.get_deployment(deployment.id, store=ports.store).name == "nightly"
        with pytest.raises(NotFound):
            service.get_deployment("etl/weekly", store=ports.store)

    def test_an_update_changes_only_what_it_sets(self, ports):
        deploy(ports, description="keep me", concurrency_limit=3)
        updated = service.update_deployment(
            "etl/nightly", DeploymentUpdate(paused=True, concurrency_limit=None),
            store=ports.store, now=NOW + timedelta(hours=1))
        assert (updated.paused, updated.description, updated.concurrency_limit) == (
            True, "keep me", None)
        assert updated.updated == NOW + timedelta(hours=1)

    def test_a_deleted_deployment_is_gone(self, ports):
        deploy(ports)
        service.delete_deployment("etl/nightly", store=ports.store)
        with pytest.raises(NotFound):
            service.get_deployment("etl/nightly", store=ports.store)

    def test_deployments_are_listed_by_flow_then_name(self, ports):
        deploy(ports, name="b")
        deploy(ports, name="a")
        deploy(ports, flow_name="aaa", name="z")
        page = service.list_deployments(store=ports.store)
        assert [(d.flow_name, d.name) for d in page.items] == [("aaa", "z"), ("etl", "a"),
                                                               ("etl", "b")]

    @pytest.mark.parametrize(
        "fields, where",
        [
            ({"schedules": [Schedule(cron="61 * * * *")]}, "schedules[0].cron"),
            ({"schedules": [Schedule()]}, "exactly one of cron"),
            ({"schedules": [Schedule(cron="0 1 * * *", timezone="Mars/Olympus")]}, "timezone"),
            ({"parameter_schema": {"type": "array"}}, "must describe an object"),
            ({"parameter_schema": {"properties": {"x": {"$ref": "#/$defs/Gone"}}}}, "$ref"),
            ({"parameter_schema": SCHEMA, "parameters": {"n": "1"}}, "default parameters.n"),
        ],
    )
    def test_a_bad_deployment_is_refused_naming_the_problem_and_writes_nothing(
        self, ports, fields, where
    ):
        writes = ports.store.writes
        with pytest.raises(ValidationError) as error:
            deploy(ports, **fields)
        assert where in error.value.message
        assert ports.store.writes == writes

    def test_defaults_may_leave_required_parameters_to_each_run(self, ports):
        deploy(ports, parameter_schema=SCHEMA, parameters={"n": 1})


class TestRunDeployment:
    def test_run_parameters_are_merged_over_defaults_and_enqueued(self, ports):
        deploy(ports, parameter_schema=SCHEMA, parameters={"n": 1, "day": "mon"})
        run = service.run_deployment(
            "etl/nightly", DeploymentRunRequest(parameters={"day": "tue"}), store=ports.store,
            queue=ports.queue, metrics=ports.metrics, created_by="bob", now=NOW)
        assert run.parameters == {"n": 1, "day": "tue"} and run.created_by == "bob"
        assert [pool for pool, _, _ in ports.queue.sent] == ["reports"]

    @pytest.mark.parametrize(
        "parameters, loc",
        [({"day": "sun"}, ["parameters", "day"]), ({"extra": 1}, ["parameters", "extra"])],
    )
    def test_run_parameters_that_break_the_schema_are_refused(self, ports, parameters, loc):
        deploy(ports, parameter_schema=SCHEMA, parameters={"n": 1, "day": "mon"})
        with pytest.raises(ValidationError) as error:
            service.run_deployment("etl/nightly", DeploymentRunRequest(parameters=parameters),
                                   store=ports.store, queue=ports.queue, metrics=ports.metrics)
        assert error.value.details[0]["loc"] == loc
        assert ports.queue.sent == []

    def test_a_required_parameter_missing_from_run_and_defaults_is_refused(self, ports):
        deploy(ports, parameter_schema=SCHEMA, parameters={"n": 1})
        with pytest.raises(ValidationError, match="parameters.day: is required"):
            service.run_deployment("etl/nightly", DeploymentRunRequest(), store=ports.store,
                                   queue=ports.queue, metrics=ports.metrics)


class TestPools:
    def test_creating_a_pool_twice_keeps_one_pool_and_updates_it(self, ports):
        service.create_pool(PoolCreate(name="gpu"), store=ports.store, queue=ports.queue, now=NOW)
        service.create_pool(PoolCreate(name="gpu", concurrency_limit=4), store=ports.store,
                            queue=ports.queue, now=NOW + timedelta(days=1))
        pool = ports.store.get_pool("gpu")
        assert (pool.concurrency_limit, pool.created) == (4, NOW)
        assert [p.name for p in service.list_pools(store=ports.store)] == ["etl", "gpu"]

    def test_a_pool_shows_its_queue_depth_workers_and_running_runs(self, ports):
        # Given two queued runs, one of them claimed by w1, and a worker w0 silent for long
        first = ports.queued_run()
        ports.queued_run()
        ports.store.upsert_worker(Worker(name="w0", pool="etl", last_seen=NOW - timedelta(hours=1)))
        service.claim_flow_run(first.id, ClaimRequest(worker="w1"), store=ports.store,
                               metrics=ports.metrics, now=NOW)
        # When the pool is inspected
        pool = service.get_pool("etl", store=ports.store, queue=ports.queue, now=NOW)
        # Then it shows both messages, one run holding a slot, and who is online
        assert (pool.queue_depth, pool.dlq_depth, pool.running) == (2, 0, 1)
        assert {(w.name, w.online) for w in pool.workers} == {("w0", False), ("w1", True)}

    def test_an_unknown_pool_is_not_found_and_the_answer_says_how_to_make_it(self, ports):
        with pytest.raises(NotFound, match="sluice pool create nope"):
            service.get_pool("nope", store=ports.store, queue=ports.queue)
        with pytest.raises(NotFound):
            ports.store.get_pool("nope")  # and nothing was written

    def test_a_queue_made_by_the_stack_is_adopted_as_a_pool(self, ports):
        # Given the default pool's queues, made by the stack before any deployment
        ports.queue.create_pool_queue("default")
        # When a worker asks for the pool, Then it gets it, and the record now exists
        pool = service.get_pool("default", store=ports.store, queue=ports.queue, now=NOW)
        assert pool.name == "default" and pool.queue_depth == 0
        assert ports.store.get_pool("default").created == NOW
