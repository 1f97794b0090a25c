"""`RunQueue` on SQS: a standard queue and a dead-letter queue per work pool."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice.exceptions import Conflict, NotFound

from ...config import DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS, POOL_TYPE_TAG, pool_queue_names
from ...ports import (
    DEFAULT_MAX_RECEIVE_COUNT,
    MAX_DELAY_SECONDS,
    MAX_RECEIVE_MESSAGES,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
    MAX_WAIT_SECONDS,
    PoolQueue,
    QueueDepth,
    QueueMessage,
)
from .errors import aws_errors, translate_aws_error

#: Dead letters are kept for SQS's longest retention, 14 days, so an operator can inspect and
#: redrive them: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 60 * 60
RECEIVE_COUNT_ATTRIBUTE = "ApproximateReceiveCount"

# SQS's JSON protocol reports these under a new code and the old query-protocol code; botocore
# shows either as `Code` depending on its version, and the old one as `QueryErrorCode`.
_MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_QUEUE_EXISTS = frozenset({"QueueAlreadyExists", "QueueNameExists"})
#: ChangeMessageVisibility/DeleteMessage on a deleted message or a superseded receipt handle.
_GONE_MESSAGE = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue",
                           "AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight"})


def tls_only_policy(queue_arn: str) -> str:
    """The queue policy that refuses any request made without TLS: the same statement CDK's
    `enforceSSL` puts on the queues the stack creates, for the pools created later by the API."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"},
        "Action": "sqs:*", "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def _codes(error: ClientError) -> set[str]:
    details = error.response.get("Error", {})
    return {str(details.get("Code", "")), str(details.get("QueryErrorCode", ""))}


class SqsRunQueue:
    """Pool queues on SQS, named `<prefix>-<pool>` and `<prefix>-<pool>-dlq` (SSE and a TLS-only
    policy on both).

    Queue URLs are resolved once per instance. Queues the stack created itself (the default
    pool's) are passed in `known_queues` and never created or reconfigured here.
    """

    def __init__(self, client: Any, queue_prefix: str, *,
                 visibility_timeout_seconds: int = DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS,
                 known_queues: Mapping[str, PoolQueue] | None = None) -> None:
        self._client = client
        self._prefix = queue_prefix
        self._visibility_timeout = visibility_timeout_seconds
        self._known = dict(known_queues or {})
        self._urls: dict[str, str] = {}  # queue name -> URL

    # ---- queues ------------------------------------------------------------------------------

    def _create_or_update(self, name: str, attributes: dict[str, str]) -> str:
        with aws_errors("create queue"):
            try:
                url = self._client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            except ClientError as error:
                if not _codes(error) & _QUEUE_EXISTS:
                    raise
                # It exists with other attributes (e.g. a new maxReceiveCount): converge on ours.
                url = self._client.get_queue_url(QueueName=name)["QueueUrl"]
                self._client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        self._urls[name] = url
        return url

    def create_pool_queue(self, pool: str, *,
                          max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> PoolQueue:
        if pool in self._known:
            return self._known[pool]
        queue_name, dlq_name = pool_queue_names(self._prefix, pool)
        encrypted = {"SqsManagedSseEnabled": "true"}
        dlq_url = self._create_or_update(
            dlq_name, {**encrypted, "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS)})
        with aws_errors("get queue attributes"):
            dlq_arn = self._client.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        with aws_errors("set queue attributes"):  # the DLQ's ARN is known only now
            self._client.set_queue_attributes(QueueUrl=dlq_url,
                                              Attributes={"Policy": tls_only_policy(dlq_arn)})
        # Both queues live in the same account and region: only the name differs.
        queue_arn = f"{dlq_arn.rsplit(':', 1)[0]}:{queue_name}"
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
        queue_url = self._create_or_update(queue_name, {
            **encrypted,
            "VisibilityTimeout": str(self._visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
            "Policy": tls_only_policy(queue_arn),
        })
        return PoolQueue(pool=pool, queue_url=queue_url, dlq_url=dlq_url)

    def declared_pool_type(self, pool: str) -> str | None:
        """The `POOL_TYPE_TAG` of the pool's queue (needs `sqs:ListQueueTags`); read only when
        a pool is adopted, so once per pool."""
        from sluice.models import POOL_TYPES

        try:
            tags = self._invoke(pool, "read the tags of", "list_queue_tags").get("Tags", {})
        except NotFound:
            return None
        declared = tags.get(POOL_TYPE_TAG)
        return declared if declared in POOL_TYPES else None

    def delete_pool_queue(self, pool: str) -> None:
        """Delete both queues (needs `sqs:DeleteQueue`). SQS refuses to create a queue of the
        same name for 60 seconds after, so recreating the pool at once fails until then:
        https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteQueue.html"""
        if pool in self._known:
            raise Conflict(
                f"pool {pool}'s queues belong to the stack (CloudFormation made them): remove "
                "the pool from the stack's pools and deploy it instead of deleting it here",
                details={"pool": pool})
        for dead_letter in (False, True):
            try:
                self._invoke(pool, "delete queue", "delete_queue", dead_letter=dead_letter)
            except NotFound:
                pass  # already gone (or never created): idempotent
        self._urls.clear()

    def _url(self, pool: str, *, dead_letter: bool = False) -> str:
        if pool in self._known:
            known = self._known[pool]
            return known.dlq_url if dead_letter else known.queue_url
        name = pool_queue_names(self._prefix, pool)[1 if dead_letter else 0]
        if name not in self._urls:
            try:
                self._urls[name] = self._client.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as error:
                if _codes(error) & _MISSING_QUEUE:
                    raise NotFound(f"pool {pool} has no queue", details={"pool": pool}) from error
                raise translate_aws_error(error, "get queue url") from error
            except BotoCoreError as error:
                raise translate_aws_error(error, "get queue url") from error
        return self._urls[name]

    def _invoke(self, pool: str, operation: str, method: str, *, dead_letter: bool = False,
                on_gone_message: Callable[[], dict[str, Any]] | None = None,
                **params: Any) -> dict[str, Any]:
        """Call SQS on a pool's queue, translating its errors. A queue deleted since its URL was
        cached is NotFound; `on_gone_message` decides what a deleted message means."""
        url = self._url(pool, dead_letter=dead_letter)
        try:
            return getattr(self._client, method)(QueueUrl=url, **params)
        except ClientError as error:
            codes = _codes(error)
            if codes & _MISSING_QUEUE:
                self._urls.clear()
                raise NotFound(f"pool {pool} has no queue", details={"pool": pool}) from error
            if codes & _GONE_MESSAGE and on_gone_message is not None:
                return on_gone_message()
            raise translate_aws_error(error, operation) from error
        except BotoCoreError as error:
            raise translate_aws_error(error, operation) from error

    # ---- messages ----------------------------------------------------------------------------

    def send(self, pool: str, body: str, *, delay_seconds: int = 0) -> str:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds must be within 0..{MAX_DELAY_SECONDS}, "
                             f"not {delay_seconds}")
        response = self._invoke(pool, "send message", "send_message",
                              MessageBody=body, DelaySeconds=delay_seconds)
        return str(response["MessageId"])

    def receive(self, pool: str, *, max_messages: int = 1, wait_seconds: int = 0,
                visibility_timeout: int | None = None) -> list[QueueMessage]:
        if not 1 <= max_messages <= MAX_RECEIVE_MESSAGES:
            raise ValueError(f"max_messages must be within 1..{MAX_RECEIVE_MESSAGES}")
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be within 0..{MAX_WAIT_SECONDS}")
        params: dict[str, Any] = {
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": [RECEIVE_COUNT_ATTRIBUTE],
        }
        if visibility_timeout is not None:
            _check_visibility(visibility_timeout)
            params["VisibilityTimeout"] = visibility_timeout
        response = self._invoke(pool, "receive messages", "receive_message", **params)
        return [
            QueueMessage(
                message_id=message["MessageId"],
                body=message["Body"],
                receipt_handle=message["ReceiptHandle"],
                receive_count=int(message.get("Attributes", {}).get(RECEIVE_COUNT_ATTRIBUTE, 1)),
            )
            for message in response.get("Messages", [])
        ]

    def change_visibility(self, pool: str, receipt_handle: str, timeout_seconds: int) -> None:
        _check_visibility(timeout_seconds)

        def gone() -> dict[str, Any]:
            raise NotFound("the message was deleted or its receipt handle is superseded",
                           details={"pool": pool})

        self._invoke(pool, "change message visibility", "change_message_visibility",
                     on_gone_message=gone, ReceiptHandle=receipt_handle,
                     VisibilityTimeout=timeout_seconds)

    def delete(self, pool: str, receipt_handle: str) -> None:
        # Already deleted, or a handle that names no live message: nothing left to delete.
        self._invoke(pool, "delete message", "delete_message", on_gone_message=dict,
                     ReceiptHandle=receipt_handle)

    def depth(self, pool: str) -> QueueDepth:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        queue = self._invoke(pool, "get queue depth", "get_queue_attributes",
                             AttributeNames=names)["Attributes"]
        dead = self._invoke(pool, "get dead-letter queue depth", "get_queue_attributes",
                            dead_letter=True, AttributeNames=names)["Attributes"]
        return QueueDepth(
            visible=int(queue.get(names[0], 0)),
            in_flight=int(queue.get(names[1], 0)),
            delayed=int(queue.get(names[2], 0)),
            dead_letter=sum(int(dead.get(name, 0)) for name in names),
        )


def _check_visibility(seconds: int) -> None:
    if not 0 <= seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        raise ValueError("a visibility timeout must be within "
                         f"0..{MAX_VISIBILITY_TIMEOUT_SECONDS} seconds, not {seconds}")
