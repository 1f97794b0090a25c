"""AWS-specific behaviour of the AWS adapters that the shared contract suites do not cover:
error mapping, TTL, index freshness, cursors, queue attributes, PutLogEvents batching, EMF.
(Settings and the key schema: test_control_plane_config.py.)"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import moto
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber

from sluice.exceptions import BadRequest, Conflict, NotFound, ServiceUnavailable, Throttled
from sluice.models import (
    Deployment,
    FlowRun,
    LogLevel,
    LogRecord,
    Pool,
    State,
    StateType,
    TaskRun,
    Worker,
)
from sluice_functions import ports
from sluice_functions.adapters.aws import CloudWatchLogSink, DynamoRunStore, EmfMetrics, SqsRunQueue
from sluice_functions.adapters.aws import dynamo_items, log_sink
from sluice_functions.adapters.aws.log_sink import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_BATCH,
    batches,
    to_event,
)
from sluice_functions.config import (
    GLOBAL_INDEXES,
    RUN_FILTER_ATTRIBUTES,
    TTL_ATTRIBUTE,
    table_key_schema,
)
from sluice_functions.ports import FlowRunFilter

REGION = "us-east-1"
TABLE = "sluice-test"
NOW = 1_900_000_000  # a fixed clock (epoch seconds) for TTL assertions
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def aws():
    with moto.mock_aws():
        yield


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=TABLE, **table_key_schema())
    return client


@pytest.fixture
def store(dynamodb):
    return DynamoRunStore(dynamodb, TABLE, retention_days=7, clock=lambda: NOW)


def offline_client(service: str):
    """A client that never reaches AWS: Stubber answers every call."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="test",
                        aws_secret_access_key="test")


def a_run(**fields) -> FlowRun:
    values = {"id": "run-1", "flow_name": "etl", "pool": "default", "scheduled_at": T0,
              "state": State(type=StateType.SCHEDULED, timestamp=T0)}
    return FlowRun(**{**values, **fields})


def raw_items(client) -> list[dict]:
    return client.scan(TableName=TABLE)["Items"]


# ---- DynamoDB: TTL, indexes, cursors ------------------------------------------------------------


@pytest.mark.parametrize("inline", [True, False], ids=["history-inline", "history-items"])
def test_every_run_item_expires_after_the_retention_and_configuration_never_does(dynamodb, inline):
    store = DynamoRunStore(dynamodb, TABLE, retention_days=7, clock=lambda: NOW,
                           history_inline=lambda: inline)
    run = store.create_flow_run(a_run(idempotency_key="k1"))
    store.set_flow_run_state(run.model_copy(update={"state": State(type=StateType.PENDING)}), "t1")
    store.upsert_task_runs([TaskRun(id="task-1", flow_run_id=run.id, task_name="t", name="t-0",
                                    state=State(type=StateType.RUNNING), version=1)])
    store.upsert_deployment(Deployment(id="d1", flow_name="etl", name="nightly", entrypoint="f:x"))
    store.upsert_pool(Pool(name="default"))
    store.upsert_worker(Worker(name="w1", pool="default", host="h"))
    store.add_finished_task_runs([TaskRun(id="task-2", flow_run_id=run.id, task_name="t",
                                          name="t-1", state=State(type=StateType.COMPLETED),
                                          version=3)])

    expiry = {item["sk"]["S"].split("#")[0] + ("~" if "~" in item["sk"]["S"] else ""):
              item.get(TTL_ATTRIBUTE) for item in raw_items(dynamodb)}
    history_items = () if inline else ("STATE", "TRANSITION")  # inline: inside the run item
    assert not inline or not {"STATE", "TRANSITION"} & set(expiry)
    for run_sk in ("RUN", *history_items, "TASK", "TASK~", "IDEMPOTENCY", "w1"):
        assert expiry[run_sk] == {"N": str(NOW + 7 * 24 * 3600)}, run_sk
    for config_sk in ("DEPLOYMENT", "etl\x00nightly", "default"):
        assert expiry[config_sk] is None, config_sk


def indexed_attributes(client) -> dict:
    """What the run indexes hold of the run item: their keys and projected attributes."""
    [run_item] = [i for i in raw_items(client) if i["sk"]["S"] == "RUN"]
    indexed = {*RUN_FILTER_ATTRIBUTES, *(a for i in GLOBAL_INDEXES for a in (i.partition_key,
                                                                          i.sort_key))}
    return {name: value for name, value in run_item.items() if name in indexed}


def test_a_heartbeat_changes_nothing_the_indexes_hold(store, dynamodb):
    # So DynamoDB writes the table item only, not the four indexes (INCLUDE projections)
    run = store.create_flow_run(a_run(deployment_id="d1"))
    before = indexed_attributes(dynamodb)
    assert len(before) == 6  # flow, deployment, pool, state type, order, entity
    store.update_flow_run(run.model_copy(update={"heartbeat_at": T0 + timedelta(minutes=1)}))
    assert indexed_attributes(dynamodb) == before


def test_slot_counts_are_exact_while_the_run_indexes_lag(store, dynamodb):
    """Concurrency limits settle simultaneous claims by counting again after a claim; a GSI
    (eventually consistent) may not show a claim made a few ms earlier, so the count of a
    deployment's or pool's active runs must not come from one."""
    # Given run indexes that lag: every index query answers as if nothing were written yet
    def stale_index(params, **_):
        if params.get("IndexName"):
            params["ExpressionAttributeValues"][":qpk"] = {"S": "nothing-written-yet"}
    dynamodb.meta.events.register("provide-client-params.dynamodb.Query", stale_index)
    by_deployment = FlowRunFilter.slot_holders(deployment_id="d1")
    by_pool = FlowRunFilter.slot_holders(pool="default")
    runs = [store.create_flow_run(a_run(id=f"run-{i}", deployment_id="d1",
                                        slot_scopes=("deployment", "pool"))) for i in range(3)]
    assert store.count_flow_runs(FlowRunFilter(deployment_id="d1")) == 0  # the lag is real

    def move(run: FlowRun, state_type: StateType, transition: str) -> FlowRun:
        return store.set_flow_run_state(
            run.model_copy(update={"state": State(type=state_type)}), transition)

    # When two are claimed, Then both are counted at once, by deployment and by pool
    first, second = move(runs[0], StateType.PENDING, "a"), move(runs[1], StateType.PENDING, "b")
    assert store.count_flow_runs(by_deployment) == store.count_flow_runs(by_pool) == 2
    # and moving between active states keeps them counted once
    first = move(first, StateType.RUNNING, "c")
    first = move(first, StateType.PAUSED, "d")
    first = move(first, StateType.RUNNING, "e")
    assert store.count_flow_runs(by_deployment) == 2
    # When one finishes and the other goes back to waiting, Then neither holds a slot
    move(first, StateType.COMPLETED, "f")
    second = move(second, StateType.SCHEDULED, "g")
    assert store.count_flow_runs(by_deployment) == store.count_flow_runs(by_pool) == 0
    # and an in-process retry that starts again without a claim holds one again
    move(second, StateType.RUNNING, "h")
    assert store.count_flow_runs(by_deployment) == 1
    assert store.count_flow_runs(FlowRunFilter.slot_holders(deployment_id="d2")) == 0
    # and a run admitted under no limit costs no slot-holder write at all
    free = store.create_flow_run(a_run(id="run-free", deployment_id="d1"))
    items_before = len(raw_items(dynamodb))
    move(free, StateType.PENDING, "i")
    assert len(raw_items(dynamodb)) == items_before  # its history and transition id: inline


def test_a_slot_holder_left_behind_is_removed_by_the_next_count(store, dynamodb):
    # Given two runs holding slots of a deployment's limit
    held = FlowRunFilter.slot_holders(deployment_id="d1")
    runs = [store.create_flow_run(a_run(id=f"run-{i}", deployment_id="d1",
                                        slot_scopes=("deployment",))) for i in range(2)]
    runs = [store.set_flow_run_state(r.model_copy(update={"state": State(type=StateType.PENDING)}),
                                     f"claim-{r.id}") for r in runs]
    # When code that knows nothing of slot holders finishes one (an older function during an
    # upgrade): the run item is rewritten, its holder item stays
    done = runs[0].model_copy(update={"state": State(type=StateType.COMPLETED), "version": 9})
    dynamodb.put_item(TableName=TABLE, Item=dynamo_items.flow_run_item(done, NOW))
    holders = lambda: sorted(i["sk"]["S"] for i in raw_items(dynamodb)  # noqa: E731
                             if i["pk"]["S"] == "ACTIVE#deployment#d1")
    assert holders() == ["run-0", "run-1"]
    # Then the next count counts only the live holder, and removes the stale one for good
    assert store.count_flow_runs(held) == 1
    assert holders() == ["run-1"]
    assert store.count_flow_runs(held) == 1


def test_lists_drop_runs_whose_index_entry_is_stale(store, dynamodb):
    # Given a run that left RUNNING while its index entry (eventually consistent) still says so
    run = store.create_flow_run(a_run(state=State(type=StateType.RUNNING)))
    completed = run.model_copy(update={"state": State(type=StateType.COMPLETED)})
    stale = dynamo_items.flow_run_item(completed, NOW)
    stale[dynamo_items.RUN_STATE_TYPE] = {"S": "RUNNING"}
    dynamodb.put_item(TableName=TABLE, Item=stale)
    # Then neither list shows it as Running
    assert store.list_flow_runs_by_state(StateType.RUNNING, limit=10).items == []
    running = FlowRunFilter(state_types=frozenset({StateType.RUNNING}))
    assert store.list_flow_runs(running, limit=10).items == []


def test_a_cursor_only_continues_the_listing_that_issued_it(store):
    for i in range(3):
        store.create_flow_run(a_run(id=f"run-{i}", deployment_id="d1"))
    page = store.list_flow_runs(FlowRunFilter(flow_name="etl"), limit=1)
    assert page.next_cursor
    with pytest.raises(BadRequest):
        store.list_flow_runs(FlowRunFilter(deployment_id="d1"), limit=1, cursor=page.next_cursor)
    with pytest.raises(BadRequest):
        store.list_flow_runs(FlowRunFilter(flow_name="other"), limit=1, cursor=page.next_cursor)
    with pytest.raises(BadRequest):
        store.list_task_runs("run-0", limit=1, cursor=page.next_cursor)


def test_the_last_page_has_no_cursor_even_when_it_is_full(store):
    for i in range(4):
        store.create_flow_run(a_run(id=f"run-{i}"))
    first = store.list_flow_runs(FlowRunFilter(), limit=2)
    last = store.list_flow_runs(FlowRunFilter(), limit=2, cursor=first.next_cursor)
    assert [r.id for r in first.items + last.items] == ["run-3", "run-2", "run-1", "run-0"]
    assert last.next_cursor is None


@pytest.mark.parametrize("limit", [0, 201, True])
def test_a_page_size_out_of_range_is_a_bad_request(store, limit):
    with pytest.raises(BadRequest):
        store.list_flow_runs(FlowRunFilter(), limit=limit)


# ---- DynamoDB: error mapping --------------------------------------------------------------------


def stubbed_store(*, history_inline: bool = True) -> tuple[DynamoRunStore, Stubber]:
    client = offline_client("dynamodb")
    return DynamoRunStore(client, TABLE, history_inline=lambda: history_inline), Stubber(client)


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException",
                                  "RequestLimitExceeded"])
def test_throttling_becomes_throttled(code):
    store, stubber = stubbed_store()
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)
    with stubber, pytest.raises(Throttled) as raised:
        store.get_flow_run("run-1")
    assert raised.value.retry_after > 0


def test_service_errors_become_service_unavailable():
    store, stubber = stubbed_store()
    stubber.add_client_error("get_item", service_error_code="InternalServerError",
                             http_status_code=500)
    with stubber, pytest.raises(ServiceUnavailable):
        store.get_flow_run("run-1")


def test_unreachable_dynamodb_becomes_service_unavailable():
    client = offline_client("dynamodb")

    def unreachable(**_):
        raise EndpointConnectionError(endpoint_url="https://dynamodb")

    client.meta.events.register("before-send.dynamodb.GetItem", unreachable)
    with pytest.raises(ServiceUnavailable):
        DynamoRunStore(client, TABLE).get_flow_run("run-1")


def cancelled(reasons: list[str]) -> dict:
    return {"CancellationReasons": [{"Code": code} for code in reasons]}


@pytest.mark.parametrize(("reasons", "expected"), [
    (["None", "None", "ConditionalCheckFailed"], Conflict),  # the transition id was used
    (["TransactionConflict", "None", "None"], Conflict),
    (["ThrottlingError", "None", "None"], Throttled),
    (["ProvisionedThroughputExceeded", "None", "None"], Throttled),
])
def test_a_cancelled_transaction_maps_by_its_reasons(reasons, expected):
    # The layout before schema 3: a state change is one transaction of run, entry and guard
    store, stubber = stubbed_store(history_inline=False)
    stubber.add_client_error("transact_write_items", "TransactionCanceledException",
                             modeled_fields=cancelled(reasons))
    with stubber, pytest.raises(expected):
        store.set_flow_run_state(a_run(version=3), "transition-1")


def test_a_lost_compare_and_set_reads_back_to_tell_conflict_from_not_found():
    store, stubber = stubbed_store(history_inline=False)
    stubber.add_client_error("transact_write_items", "TransactionCanceledException",
                             modeled_fields=cancelled(["ConditionalCheckFailed", "None", "None"]))
    stubber.add_response("get_item", {}, {"TableName": TABLE, "Key": ANY, "ConsistentRead": True})
    with stubber, pytest.raises(NotFound):
        store.set_flow_run_state(a_run(version=3), "transition-1")


def test_a_lost_inline_state_change_reads_back_to_tell_conflict_from_not_found():
    # Schema 3: one conditional UpdateItem; its failed condition is told apart by a read
    store, stubber = stubbed_store()
    stubber.add_client_error("update_item", "ConditionalCheckFailedException")
    stubber.add_response("get_item", {}, {"TableName": TABLE, "Key": ANY, "ConsistentRead": True})
    with stubber, pytest.raises(NotFound):
        store.set_flow_run_state(a_run(version=3), "transition-1")


def test_a_cas_write_retried_after_it_landed_is_a_success(store, dynamodb):
    # botocore retries a PutItem whose first attempt landed but whose answer was lost
    run = store.create_flow_run(a_run())
    updated = run.model_copy(update={"worker": "w1"})
    first = store.update_flow_run(updated)
    again = store.update_flow_run(updated)  # same version: the condition fails, the item matches
    assert again == first and again.version == 2


# ---- SQS ----------------------------------------------------------------------------------------


@pytest.fixture
def sqs(aws):
    return boto3.client("sqs", region_name=REGION)


def test_pool_queues_are_encrypted_and_redrive_to_their_dlq(sqs):
    queue = SqsRunQueue(sqs, "sluice")
    urls = queue.create_pool_queue("etl", max_receive_count=3)
    assert urls.queue_url.endswith("/sluice-etl") and urls.dlq_url.endswith("/sluice-etl-dlq")
    attributes = sqs.get_queue_attributes(QueueUrl=urls.queue_url, AttributeNames=["All"])[
        "Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 3 and redrive["deadLetterTargetArn"].endswith("etl-dlq")
    assert attributes["SqsManagedSseEnabled"] == "true"
    # Asking again with another maxReceiveCount converges the existing queue on it
    assert queue.create_pool_queue("etl", max_receive_count=7) == urls
    attributes = sqs.get_queue_attributes(QueueUrl=urls.queue_url,
                                          AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 7


def test_pool_queues_created_by_the_api_refuse_requests_without_tls(sqs):
    """Given a pool created after the stack (by the API, not by CDK's enforceSSL),
    when its queues are made, then both carry the same TLS-only deny as the stack's queues."""
    urls = SqsRunQueue(sqs, "sluice").create_pool_queue("etl")
    for url, name in ((urls.queue_url, "sluice-etl"), (urls.dlq_url, "sluice-etl-dlq")):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])[
            "Attributes"]
        [statement] = json.loads(attributes["Policy"])["Statement"]
        assert statement["Effect"] == "Deny" and statement["Action"] == "sqs:*"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert statement["Resource"] == attributes["QueueArn"] and attributes[
            "QueueArn"].endswith(f":{name}")


def test_receive_asks_sqs_for_the_receive_count(sqs):
    queue = SqsRunQueue(sqs, "sluice")
    queue.create_pool_queue("etl")
    seen: list[dict] = []
    sqs.meta.events.register("provide-client-params.sqs.ReceiveMessage",
                             lambda params, **_: seen.append(dict(params)))
    queue.send("etl", "hello")
    [message] = queue.receive("etl", visibility_timeout=0)
    assert seen[0]["MessageSystemAttributeNames"] == ["ApproximateReceiveCount"]
    assert message.receive_count == 1


def test_a_queue_deleted_behind_the_adapter_is_not_found(sqs):
    queue = SqsRunQueue(sqs, "sluice")
    urls = queue.create_pool_queue("etl")
    queue.send("etl", "cached url")
    sqs.delete_queue(QueueUrl=urls.queue_url)
    with pytest.raises(NotFound):
        queue.send("etl", "again")


def test_sqs_throttling_becomes_throttled():
    client = offline_client("sqs")
    queue = SqsRunQueue(client, "sluice", known_queues={
        "etl": ports.PoolQueue(pool="etl", queue_url="https://q/etl", dlq_url="https://q/dlq")})
    stubber = Stubber(client)
    stubber.add_client_error("send_message", "RequestThrottled", http_status_code=403)
    with stubber, pytest.raises(Throttled):
        queue.send("etl", "x")


# ---- CloudWatch Logs ----------------------------------------------------------------------------


#: CloudWatch refuses events more than 14 days old or 2 hours ahead: log tests use recent times.
RECENT = datetime.now(timezone.utc) - timedelta(hours=1)


def record(i: int, message: str = "m", at: datetime = RECENT) -> LogRecord:
    return LogRecord(id=f"log-{i}", flow_run_id="run-1", timestamp=at, message=message)


def test_batches_split_at_the_event_count_limit(monkeypatch):
    # A record's JSON is over 100 bytes, so 10,000 of them pass the byte limit first; a smaller
    # count limit shows the split without building a megabyte of records.
    monkeypatch.setattr(log_sink, "MAX_EVENTS_PER_BATCH", 3)
    assert [len(b) for b in batches([record(i) for i in range(7)])] == [3, 3, 1]
    assert log_sink.MAX_EVENTS_PER_BATCH != MAX_EVENTS_PER_BATCH == 10_000


def test_batches_split_at_the_byte_limit_counting_the_per_event_overhead():
    records = [record(i, "x" * 30_000) for i in range(80)]  # ~2.4 MB of messages
    split = list(batches(records))
    assert len(split) == 3
    for batch in split:
        assert sum(e.size for e in batch) <= MAX_BATCH_BYTES
        assert all(e.size == len(e.message.encode()) + EVENT_OVERHEAD_BYTES for e in batch)
    assert sum(len(b) for b in split) == 80


def test_batches_are_chronological_and_span_at_most_a_day():
    records = [record(0, at=RECENT + timedelta(hours=30)), record(1, at=RECENT),
               record(2, at=RECENT + timedelta(hours=1))]
    split = list(batches(records))
    assert [[json.loads(e.message)["id"] for e in batch] for batch in split] == [
        ["log-1", "log-2"], ["log-0"]]


def test_an_oversized_event_is_truncated_to_fit():
    huge = LogRecord.model_construct(id="big", flow_run_id="run-1", timestamp=RECENT,
                                     level=LogLevel.INFO, logger="", task_run_id=None,
                                     message="\x00" * 100_000)  # escapes to 600 KB of JSON
    event = to_event(huge)
    assert event.size - EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES
    assert json.loads(event.message)["message"].endswith("[truncated]")


def test_append_splits_large_batches_into_several_put_log_events(aws):
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName="g")
    calls: list[int] = []
    client.meta.events.register("provide-client-params.logs.PutLogEvents",
                                lambda params, **_: calls.append(len(params["logEvents"])))
    sink = CloudWatchLogSink(client, "g")
    records = [record(i, "y" * 30_000) for i in range(40)]
    assert sink.append("run-1", records) == 40
    # Two batches under the byte limit; the first was sent twice, around creating the stream
    assert calls == [34, 34, 6]
    streams = client.describe_log_streams(logGroupName="g")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["flow-run/run-1"]


def test_events_cloudwatch_rejects_are_not_counted_as_accepted():
    client = offline_client("logs")
    stubber = Stubber(client)
    stubber.add_response("put_log_events", {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 2}})
    with stubber:
        assert CloudWatchLogSink(client, "g").append("run-1", [record(i) for i in range(5)]) == 3


def test_a_log_cursor_only_continues_reads_of_its_own_run(aws):
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName="g")
    sink = CloudWatchLogSink(client, "g")
    sink.append("run-1", [record(1)])
    cursor = sink.read("run-1").next_cursor
    with pytest.raises(BadRequest):
        sink.read("run-2", cursor=cursor)


def test_events_sluice_did_not_write_are_skipped(aws):
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName="g")
    sink = CloudWatchLogSink(client, "g")
    sink.append("run-1", [record(1)])
    client.put_log_events(logGroupName="g", logStreamName=sink.stream_name("run-1"), logEvents=[
        {"timestamp": int(RECENT.timestamp() * 1000) + 5, "message": "not a record"}])
    assert [r.id for r in sink.read("run-1").items] == ["log-1"]


def test_cloudwatch_throttling_becomes_throttled():
    client = offline_client("logs")
    stubber = Stubber(client)
    stubber.add_client_error("get_log_events", "ThrottlingException")
    with stubber, pytest.raises(Throttled):
        CloudWatchLogSink(client, "g").read("run-1")


# ---- EMF metrics --------------------------------------------------------------------------------


def emitted(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_metrics_flush_one_emf_document_per_dimension_set(capsys):
    metrics = EmfMetrics("SluiceTest")
    metrics.count("FlowRunsCreated", dimensions={"pool": "a"})
    metrics.count("FlowRunsCreated", 2, dimensions={"pool": "b"})
    metrics.timing("ClaimLatency", 12.5)
    metrics.flush()
    documents = emitted(capsys)
    assert len(documents) == 3
    by_pool = {d.get("pool"): d for d in documents}
    assert by_pool["b"]["FlowRunsCreated"] == [2.0]
    assert by_pool[None]["ClaimLatency"] == [12.5]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SluiceTest" for d in documents)
    # Dimensions survive a flush: the next batch is labelled again
    metrics.gauge("QueueDepth", 4, dimensions={"pool": "a"})
    metrics.flush()
    assert emitted(capsys)[0]["pool"] == "a"


def test_metrics_never_raise(capsys, monkeypatch):
    metrics = EmfMetrics("SluiceTest")
    metrics.count("Bad", float("nan"))  # Powertools refuses it; the adapter only logs
    metrics.count("Good")
    from aws_lambda_powertools.metrics import EphemeralMetrics

    monkeypatch.setattr(EphemeralMetrics, "flush_metrics", lambda self, **_: 1 / 0)
    metrics.flush()
    metrics.flush()  # nothing buffered: prints nothing
    assert capsys.readouterr().out == ""


def test_s3_bundles_presign_and_detect_uploads():
    import hashlib

    import boto3
    from moto import mock_aws

    from sluice_functions.adapters.aws.s3_bundles import S3BundleStore

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bundles")
        store = S3BundleStore(s3, "bundles")
        data = b"PK fake zip"
        digest = hashlib.sha256(data).hexdigest()
        # Given nothing uploaded, Then the bundle does not exist
        assert not store.exists(digest)
        # When the bytes go to the presigned upload URL (moto intercepts the request)
        url = store.upload_url(digest, len(data))
        assert "Signature=" in url and digest in url
        s3.put_object(Bucket="bundles", Key=f"bundles/{digest}.zip", Body=data)
        # Then it exists and the download URL names it
        assert store.exists(digest)
        assert f"bundles/{digest}.zip" in store.download_url(digest)
