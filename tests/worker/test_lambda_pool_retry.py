"""A record a Lambda pool leaves failed comes back in 30 s, not after the queue's visibility
timeout (6x the function's 15 minutes, as AWS asks for event source mappings)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sluice.models import RunMessage
from sluice_worker.lambda_pool import LambdaPool, LambdaPoolSettings, RecordNotDone
from sluice_worker.sqs_records import RETRY_SECONDS

QUEUE_ARN = "arn:aws:sqs:eu-central-1:123456789012:sluice-quick"


class RecordingSqs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def get_queue_url(self, **kwargs):  # noqa: ANN003, ANN201
        self.calls.append(("get_queue_url", kwargs))
        return {"QueueUrl": "https://sqs.eu-central-1.amazonaws.com/123456789012/sluice-quick"}

    def change_message_visibility(self, **kwargs):  # noqa: ANN003, ANN201
        self.calls.append(("change_message_visibility", kwargs))


def test_a_record_reached_too_late_is_shown_again_soon():
    # Given a pool function with 5 s left in its invocation (too little to start a run)
    sqs = RecordingSqs()
    pool = LambdaPool(client=None, settings=LambdaPoolSettings(pool="quick"), sqs=sqs)
    record = SimpleNamespace(
        body=RunMessage(flow_run_id="ab" * 16, pool="quick").model_dump_json(),
        event_source_arn=QUEUE_ARN, receipt_handle="rh-1", message_id="m-1")
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 25_000)

    # When its record is handled, Then it is left failed...
    with pytest.raises(RecordNotDone):
        pool.run_record(record, context=context)
    # ...and made visible again in 30 s, in the queue the record came from
    assert sqs.calls == [
        ("get_queue_url", {"QueueName": "sluice-quick", "QueueOwnerAWSAccountId": "123456789012"}),
        ("change_message_visibility", {
            "QueueUrl": "https://sqs.eu-central-1.amazonaws.com/123456789012/sluice-quick",
            "ReceiptHandle": "rh-1", "VisibilityTimeout": RETRY_SECONDS})]
