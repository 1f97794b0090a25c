"""The Fargate pool's dispatcher: SQS batches of run messages become claims + one ECS RunTask
each (moto's ECS, with a cluster, the pool's task definition and an awsvpc network made in the
fixture), and ECS "Task State Change" STOPPED events become Crashed/Cancelled reports.

The control plane is real: an embedded server in this process (SQLite), reached over HTTP with a
client scoped to the pool, as the dispatcher function reaches the deployed API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sluice.client.api import SluiceClient
from sluice.models import (
    Completed,
    DeploymentCreate,
    PoolCreate,
    RunMessage,
    Running,
    StateType,
    new_id,
)
from sluice.profiles import Connection
from sluice_functions.embedded.server import EmbeddedServer
from sluice_worker.fargate_dispatch import FargateDispatcher, make_handler
from sluice_worker.fargate_settings import (
    ENV_ATTEMPT,
    ENV_FLOW_RUN_ID,
    ENV_LEASE,
    ENV_POOL,
    FargateDispatchSettings,
)

REGION = "us-east-1"
POOL = "fargate-pool"
FAMILY = "sluice-fargate-pool"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    data = tmp_path_factory.mktemp("fargate-dispatch") / "data"
    plane = EmbeddedServer(data_dir=data, port=0, tick_seconds=3600).start()
    with SluiceClient(Connection(plane.url)) as operator:
        operator.create_pool(PoolCreate(name=POOL, type="fargate"))
    yield plane
    plane.stop()


@pytest.fixture
def operator(server) -> Iterator[SluiceClient]:
    with SluiceClient(Connection(server.url), attempts=1) as client:
        yield client


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, Any]]:
    """moto's ECS with what the FargatePool construct creates: a cluster, the pool's task
    definition (registered once, here) and a VPC with a subnet and security group."""
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(var, value)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # moto's awsvpc tasks name the ENI's private DNS name, which needs DNS hostnames on.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="sluice-tasks", Description="outbound",
                                          VpcId=vpc)["GroupId"]
        sqs = boto3.client("sqs", region_name=REGION)
        # The dispatcher's queue: visibility six times its function's timeout (the construct)
        queue_url = sqs.create_queue(QueueName=f"sluice-{POOL}", Attributes={
            "VisibilityTimeout": "360"})["QueueUrl"]
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName="sluice")
        ecs.register_task_definition(
            family=FAMILY, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="256", memory="512",
            containerDefinitions=[{"name": "sluice", "image": "sluice-flows:latest",
                                   "essential": True, "memory": 512}])
        yield {"ecs": ecs, "subnet": subnet, "group": group, "sqs": sqs, "queue_url": queue_url}


def settings_of(aws: dict[str, Any], **changes: Any) -> FargateDispatchSettings:
    values = {"pool": POOL, "cluster": "sluice", "task_definition": FAMILY,
              "subnets": aws["subnet"], "security_groups": aws["group"], **changes}
    return FargateDispatchSettings(**values)


@pytest.fixture
def dispatcher(server, aws) -> Iterator[FargateDispatcher]:
    with SluiceClient(Connection(server.url), pool=POOL, attempts=1) as client:
        yield FargateDispatcher(client=client, ecs=RecordingEcs(aws["ecs"]),
                                settings=settings_of(aws))


class RecordingEcs:
    """moto's ECS client, recording RunTask requests; `short_of_capacity` run ids get the
    answer Fargate gives when it has no capacity (`failures`, no task)."""

    def __init__(self, ecs: Any) -> None:
        self.ecs = ecs
        self.run_task_requests: list[dict[str, Any]] = []
        self.register_calls = 0
        self.short_of_capacity: set[str] = set()

    def run_task(self, **request: Any) -> dict[str, Any]:
        self.run_task_requests.append(request)
        if request["startedBy"] in self.short_of_capacity:
            return {"tasks": [], "failures": [{"arn": "arn:aws:ecs:us-east-1:1:task/x",
                                               "reason": "Capacity is unavailable at this "
                                               "time. Please try again later or in a "
                                               "different availability zone"}]}
        return self.ecs.run_task(**request)

    def register_task_definition(self, **request: Any) -> Any:
        self.register_calls += 1
        return self.ecs.register_task_definition(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ecs, name)


def queued_run(operator: SluiceClient) -> str:
    """A run of a deployment in the Fargate pool, as its queue message would name it."""
    deployment = operator.create_deployment(DeploymentCreate(
        flow_name=f"flow-{uuid.uuid4().hex[:8]}", name="nightly", entrypoint="flows.py:f",
        pool=POOL))
    return operator.run_deployment(deployment.id).id


def sqs_record(run_id: str, message_id: str | None = None, body: str | None = None,
               receive_count: int = 1) -> dict[str, Any]:
    """A record as the SQS event source mapping hands it to the function."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"receipt-{uuid.uuid4().hex}",
        "body": body if body is not None else
        RunMessage(flow_run_id=run_id, pool=POOL, attempt=0).model_dump_json(),
        "attributes": {"ApproximateReceiveCount": str(receive_count),
                       "SentTimestamp": "1700000000000", "SenderId": "AIDA",
                       "ApproximateFirstReceiveTimestamp": "1700000000000"},
        "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:sluice-{POOL}",
        "awsRegion": REGION,
    }


def environment_of(request: dict[str, Any]) -> dict[str, str]:
    (override,) = request["overrides"]["containerOverrides"]
    assert override["name"] == "sluice"
    return {pair["name"]: pair["value"] for pair in override["environment"]}


def stopped_event(ecs: Any, task_arn: str, *, exit_code: int | None, reason: str,
                  stop_code: str = "EssentialContainerExited") -> dict[str, Any]:
    """The EventBridge event ECS sends when `task_arn` stopped: its detail is the task as
    DescribeTasks shows it, with the stop fields set."""
    (task,) = ecs.describe_tasks(cluster="sluice", tasks=[task_arn])["tasks"]
    detail = {key: value for key, value in task.items() if key != "ResponseMetadata"}
    containers = [{**c, "lastStatus": "STOPPED"} for c in detail.get("containers", [])]
    for container in containers:
        container.pop("exitCode", None)
        if exit_code is not None:
            container["exitCode"] = exit_code
    detail.update(lastStatus="STOPPED", desiredStatus="STOPPED", stoppedReason=reason,
                  stopCode=stop_code, containers=containers)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Task State Change",
            "source": "aws.ecs", "account": "123456789012", "region": REGION,
            "resources": [task_arn], "detail": detail}


def started_task(dispatcher: FargateDispatcher, operator: SluiceClient) -> tuple[str, str, str]:
    """A run dispatched to a task: (run id, lease, task ARN)."""
    run_id = queued_run(operator)
    assert dispatcher.dispatch(str(uuid.uuid4()), RunMessage(
        flow_run_id=run_id, pool=POOL).model_dump_json()) == "started"
    tasks = dispatcher.ecs.list_tasks(cluster="sluice", startedBy=run_id)["taskArns"]
    lease = environment_of(dispatcher.ecs.run_task_requests[-1])[ENV_LEASE]
    return run_id, lease, tasks[0]


class TestDispatch:
    def test_a_batch_of_three_runs_is_three_claims_and_three_tasks_of_the_pools_definition(
            self, dispatcher, operator):
        # Given three queued runs of the Fargate pool
        runs = [queued_run(operator) for _ in range(3)]
        handler = make_handler(lambda: dispatcher)
        # When the queue's event source mapping hands them over in one batch
        answer = handler({"Records": [sqs_record(run) for run in runs]}, None)
        # Then every record succeeded: each run was claimed and got one task
        assert answer == {"batchItemFailures": []}
        requests = dispatcher.ecs.run_task_requests
        assert [r["startedBy"] for r in requests] == runs
        for run_id, request in zip(runs, requests, strict=True):
            assert operator.get_flow_run(run_id).state.type == StateType.PENDING
            env = environment_of(request)
            assert env[ENV_FLOW_RUN_ID] == run_id and env[ENV_POOL] == POOL
            assert env[ENV_ATTEMPT] == "0" and len(env[ENV_LEASE]) >= 16
            assert request["clientToken"] == env[ENV_LEASE]  # a resend gets the same task
            assert request["taskDefinition"] == FAMILY and request["launchType"] == "FARGATE"
            network = request["networkConfiguration"]["awsvpcConfiguration"]
            assert network["assignPublicIp"] == "DISABLED"
            assert dispatcher.ecs.list_tasks(cluster="sluice", startedBy=run_id)["taskArns"]
        # and the dispatcher registered no task definition: the pool's one is used
        assert dispatcher.ecs.register_calls == 0
        families = dispatcher.ecs.list_task_definitions()["taskDefinitionArns"]
        assert len(families) == 1

    def test_no_capacity_fails_the_record_and_its_redelivery_starts_it_under_the_same_lease(
            self, dispatcher, operator, aws):
        # Given a run Fargate has no capacity for, in a batch with one it can start, its
        # message received from the pool's queue by the event source mapping
        short, fine = queued_run(operator), queued_run(operator)
        dispatcher.ecs.short_of_capacity.add(short)
        dispatcher.sqs, dispatcher.retry_seconds = aws["sqs"], 0
        sqs, queue_url = aws["sqs"], aws["queue_url"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=RunMessage(
            flow_run_id=short, pool=POOL).model_dump_json())
        (received,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
        record = sqs_record(short, message_id=received["MessageId"])
        record["receiptHandle"] = received["ReceiptHandle"]
        handler = make_handler(lambda: dispatcher)
        # When the batch is dispatched
        answer = handler({"Records": [record, sqs_record(fine)]}, None)
        # Then only that record is reported failed, and it shows again after the dispatcher's
        # retry delay (0 s here), not after the queue's 6-minute visibility timeout
        assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        shown_again = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        assert [m["MessageId"] for m in shown_again] == [received["MessageId"]]
        assert not dispatcher.ecs.list_tasks(cluster="sluice", startedBy=short)["taskArns"]
        first_lease = environment_of(dispatcher.ecs.run_task_requests[0])[ENV_LEASE]
        # and the run is held by its claim meanwhile (the claim's start-up grace), not lost
        assert operator.get_flow_run(short).state.type == StateType.PENDING
        # When capacity is back and SQS delivers the same message again
        dispatcher.ecs.short_of_capacity.clear()
        again = handler({"Records": [{**record, "attributes": {
            **record["attributes"], "ApproximateReceiveCount": "2"}}]}, None)
        # Then the repeated claim got the same lease and the task starts under it
        assert again == {"batchItemFailures": []}
        assert environment_of(dispatcher.ecs.run_task_requests[-1])[ENV_LEASE] == first_lease
        assert len(dispatcher.ecs.list_tasks(cluster="sluice", startedBy=short)["taskArns"]) == 1

    def test_a_run_that_is_not_ours_to_claim_is_dropped_without_a_task(self, dispatcher,
                                                                        operator):
        # Given a run another attempt already claimed (a second copy of its message)
        run_id = queued_run(operator)
        assert dispatcher.dispatch("first-copy", RunMessage(
            flow_run_id=run_id, pool=POOL).model_dump_json()) == "started"
        # When another copy of the message arrives (another message id)
        outcome = dispatcher.dispatch("second-copy", RunMessage(
            flow_run_id=run_id, pool=POOL).model_dump_json())
        # Then it is dropped: no second task
        assert outcome == "not-ours"
        assert len(dispatcher.ecs.list_tasks(cluster="sluice", startedBy=run_id)["taskArns"]) == 1

    def test_a_task_definition_that_does_not_exist_crashes_the_run_with_the_fix(
            self, server, aws, operator):
        # Given a dispatcher whose pool names a task definition ECS does not know
        with SluiceClient(Connection(server.url), pool=POOL, attempts=1) as client:
            broken = FargateDispatcher(client=client, ecs=aws["ecs"],
                                       settings=settings_of(aws, task_definition="missing"))
            run_id = queued_run(operator)
            # When its message is dispatched
            outcome = broken.dispatch(str(uuid.uuid4()), RunMessage(
                flow_run_id=run_id, pool=POOL).model_dump_json())
        # Then the run is Crashed at once, naming what to check (no redelivery can fix it)
        assert outcome == "not-startable"
        state = operator.get_flow_run(run_id).state
        assert state.type == StateType.CRASHED
        assert "ClientException" in state.message and "task definition" in state.message

    def test_malformed_records_fail_and_are_left_to_dead_letter(self, dispatcher):
        # Given a batch with a body that is no run message
        handler = make_handler(lambda: dispatcher)
        bad = sqs_record("", body="not json")
        # When it is dispatched, Then that record fails and nothing started
        assert handler({"Records": [bad]}, None) == {
            "batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
        assert dispatcher.ecs.run_task_requests == []


class TestStoppedTasks:
    @pytest.mark.parametrize(("exit_code", "reason"), [
        (137, "Essential container in task exited"),
        (None, "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing)"),
    ])
    def test_a_task_that_stopped_before_its_run_ended_crashes_the_run_with_the_reason(
            self, dispatcher, operator, exit_code, reason):
        # Given a run whose task started it (Running under the dispatcher's lease)
        run_id, lease, task_arn = started_task(dispatcher, operator)
        task = dispatcher.client  # the task reports as its pool's principal, with the lease
        task.set_flow_run_state(run_id, Running(), new_id(), lease=lease)
        handler = make_handler(lambda: dispatcher)
        # When ECS says the task stopped
        event = stopped_event(dispatcher.ecs, task_arn, exit_code=exit_code, reason=reason)
        answer = handler(event, None)
        # Then the run is Crashed with the stop reason and the exit code
        assert answer == {"outcome": "crashed"}
        state = operator.get_flow_run(run_id).state
        assert state.type == StateType.CRASHED
        shown = f"exit code {exit_code}" if exit_code is not None else "no exit code"
        assert state.message == f"Fargate task stopped: {reason} ({shown})"
        # and the same event delivered again changes nothing
        assert handler(event, None) == {"outcome": "run-ended"}

    def test_a_task_that_stopped_after_its_run_completed_reports_nothing(self, dispatcher,
                                                                           operator):
        # Given a run its task carried to Completed
        run_id, lease, task_arn = started_task(dispatcher, operator)
        task = dispatcher.client  # the task reports as its pool's principal, with the lease
        task.set_flow_run_state(run_id, Running(), new_id(), lease=lease)
        task.set_flow_run_state(run_id, Completed(), new_id(), lease=lease)
        # When the task's STOPPED event arrives (exit code 0)
        answer = make_handler(lambda: dispatcher)(stopped_event(
            dispatcher.ecs, task_arn, exit_code=0, reason="Essential container in task exited"),
            None)
        # Then nothing is reported: the run stays Completed
        assert answer == {"outcome": "run-ended"}
        assert operator.get_flow_run(run_id).state.type == StateType.COMPLETED

    def test_a_stopped_task_of_a_cancelling_run_ends_it_cancelled(self, dispatcher, operator):
        # Given a Running run whose cancellation was requested
        run_id, lease, task_arn = started_task(dispatcher, operator)
        task = dispatcher.client  # the task reports as its pool's principal, with the lease
        task.set_flow_run_state(run_id, Running(), new_id(), lease=lease)
        operator.cancel_flow_run(run_id)
        assert operator.get_flow_run(run_id).state.type == StateType.CANCELLING
        # When its task stops (e.g. stopped from the console) before reporting
        answer = make_handler(lambda: dispatcher)(stopped_event(
            dispatcher.ecs, task_arn, exit_code=143, reason="Task stopped by user"), None)
        # Then the run ends Cancelled
        assert answer == {"outcome": "cancelled"}
        assert operator.get_flow_run(run_id).state.type == StateType.CANCELLED

    def test_a_stopped_task_of_an_older_attempt_reports_nothing(self, dispatcher, operator):
        # Given a run whose task's lease is no longer the run's (the lease in the event is old)
        run_id, lease, task_arn = started_task(dispatcher, operator)
        event = stopped_event(dispatcher.ecs, task_arn, exit_code=1, reason="Essential "
                              "container in task exited")
        for pair in event["detail"]["overrides"]["containerOverrides"][0]["environment"]:
            if pair["name"] == ENV_LEASE:
                pair["value"] = "0" * 32
        # When the event arrives, Then the write is refused and the run is untouched
        assert make_handler(lambda: dispatcher)(event, None) == {"outcome": "not-this-attempt"}
        assert operator.get_flow_run(run_id).state.type == StateType.PENDING

    @pytest.mark.parametrize("event", [
        {"hello": "world"},
        {"detail-type": "ECS Task State Change", "detail": {"lastStatus": "STOPPED",
                                                            "taskArn": "arn:task/1"}},
        {"detail-type": "ECS Task State Change", "detail": {
            "lastStatus": "STOPPED", "startedBy": "ecs-svc/123", "overrides": {}}},
    ])
    def test_malformed_events_are_counted_and_ignored(self, dispatcher, event, capsys):
        # When an event that names no run and lease arrives
        answer = make_handler(lambda: dispatcher)(event, None)
        # Then it is ignored, and counted in the EMF metric
        assert answer == {"outcome": "malformed"}
        assert '"FargateEventsMalformed"' in capsys.readouterr().out

    def test_task_state_changes_other_than_stopped_are_ignored(self, dispatcher):
        event = {"detail-type": "ECS Task State Change",
                 "detail": {"lastStatus": "RUNNING", "startedBy": "x"}}
        assert make_handler(lambda: dispatcher)(event, None) == {"outcome": "not-stopped"}
