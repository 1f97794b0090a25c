"""The SQS actions a worker uses, in SQS's JSON protocol, over the embedded `RunQueue`.

The worker runs one boto3 code path in both modes; locally its endpoint is this server.
Requests carry `X-Amz-Target: AmazonSQS.<Action>` and a JSON body
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-json.html).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sluice.exceptions import NotFound

from ..ports import MAX_RECEIVE_MESSAGES, MAX_WAIT_SECONDS, RunQueue

TARGET_PREFIX = "AmazonSQS."
#: SQS refuses larger message bodies, and characters outside XML's
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
MAX_MESSAGE_BYTES = 262_144
_INVALID_CHARACTERS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_QUEUE_MARK = "/queue/"
_DLQ_SUFFIX = "/dead-letter"


class SqsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400,
                 query_code: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.query_code = query_code or code


def queue_of(queue_url: Any) -> tuple[str, bool]:
    """The pool a queue URL names, and whether it is the dead-letter queue."""
    if not isinstance(queue_url, str) or _QUEUE_MARK not in queue_url:
        raise SqsError("QueueDoesNotExist", f"no such queue: {queue_url!r}",
                       query_code="AWS.SimpleQueueService.NonExistentQueue")
    name = queue_url.split(_QUEUE_MARK, 1)[1]
    if name.endswith(_DLQ_SUFFIX):
        return name[: -len(_DLQ_SUFFIX)], True
    return name.strip("/"), False


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SqsError("InvalidParameterValue",
                       f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


class SqsEndpoint:
    def __init__(self, queue: RunQueue) -> None:
        self.queue = queue

    def handle(self, target: str, raw_body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            action = target.removeprefix(TARGET_PREFIX)
            try:
                body = json.loads(raw_body or b"{}")
            except ValueError:
                raise SqsError("MalformedQueryString", "the request body is not JSON") from None
            if not isinstance(body, dict):
                raise SqsError("MalformedQueryString", "the request body must be a JSON object")
            handler = getattr(self, f"_{action}", None)
            if handler is None:
                raise SqsError("InvalidAction", f"{action} is not supported by the embedded "
                               "server (ReceiveMessage, DeleteMessage, ChangeMessageVisibility, "
                               "SendMessage, GetQueueUrl, GetQueueAttributes)")
            try:
                result = handler(body)
            except NotFound as exc:
                raise SqsError("QueueDoesNotExist", str(exc),
                               query_code="AWS.SimpleQueueService.NonExistentQueue") from None
            except ValueError as exc:
                raise SqsError("InvalidParameterValue", str(exc)) from None
            return 200, {"content-type": "application/x-amz-json-1.0"}, json.dumps(result).encode()
        except SqsError as exc:
            payload = {"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message}
            headers = {"content-type": "application/x-amz-json-1.0",
                       "x-amzn-query-error": f"{exc.query_code};Sender"}
            return exc.status, headers, json.dumps(payload).encode()

    # Each action takes the parsed JSON body and returns the JSON answer.
    def _GetQueueUrl(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("QueueName")
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "QueueName is required")
        urls = self.queue.queue_urls(name)  # type: ignore[attr-defined]
        self.queue.depth(name)  # raises NotFound for an unknown pool
        return {"QueueUrl": urls.queue_url}

    def _ReceiveMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        pool, dead = queue_of(body.get("QueueUrl"))
        if dead:
            raise SqsError("InvalidParameterValue", "receiving from a dead-letter queue is not "
                           "supported locally; inspect it with `sluice pool inspect`")
        visibility = body.get("VisibilityTimeout")
        messages = self.queue.receive(
            pool,
            max_messages=_int(body, "MaxNumberOfMessages", 1, 1, MAX_RECEIVE_MESSAGES),
            wait_seconds=_int(body, "WaitTimeSeconds", 0, 0, MAX_WAIT_SECONDS),
            visibility_timeout=None if visibility is None else
            _int(body, "VisibilityTimeout", 30, 0, 43_200),
        )
        return {"Messages": [{
            "MessageId": m.message_id, "ReceiptHandle": m.receipt_handle, "Body": m.body,
            "MD5OfBody": hashlib.md5(m.body.encode()).hexdigest(),
            "Attributes": {"ApproximateReceiveCount": str(m.receive_count)},
        } for m in messages]}

    def _DeleteMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        pool, _ = queue_of(body.get("QueueUrl"))
        self.queue.delete(pool, _receipt(body))
        return {}

    def _ChangeMessageVisibility(self, body: dict[str, Any]) -> dict[str, Any]:
        pool, _ = queue_of(body.get("QueueUrl"))
        try:
            self.queue.change_visibility(pool, _receipt(body),
                                         _int(body, "VisibilityTimeout", 0, 0, 43_200))
        except NotFound as exc:
            raise SqsError("ReceiptHandleIsInvalid", str(exc),
                           query_code="ReceiptHandleIsInvalid") from None
        return {}

    def _SendMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        pool, _ = queue_of(body.get("QueueUrl"))
        message = body.get("MessageBody")
        if not isinstance(message, str) or not message:
            raise SqsError("MissingParameter", "MessageBody is required")
        invalid = _INVALID_CHARACTERS.search(message)
        if invalid:
            raise SqsError("InvalidMessageContents", "the message contains characters outside "
                           f"the allowed set: {invalid.group()!r} at {invalid.start()}")
        size = len(message.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise SqsError("InvalidParameterValue", "One or more parameters are invalid. Reason: "
                           f"Message must be shorter than {MAX_MESSAGE_BYTES} bytes "
                           f"(got {size}).")
        message_id = self.queue.send(pool, message,
                                     delay_seconds=_int(body, "DelaySeconds", 0, 0, 900))
        return {"MessageId": message_id,
                "MD5OfMessageBody": hashlib.md5(message.encode()).hexdigest()}

    def _GetQueueAttributes(self, body: dict[str, Any]) -> dict[str, Any]:
        pool, dead = queue_of(body.get("QueueUrl"))
        depth = self.queue.depth(pool)
        if dead:
            counts = {"ApproximateNumberOfMessages": depth.dead_letter,
                      "ApproximateNumberOfMessagesNotVisible": 0,
                      "ApproximateNumberOfMessagesDelayed": 0}
        else:
            counts = {"ApproximateNumberOfMessages": depth.visible,
                      "ApproximateNumberOfMessagesNotVisible": depth.in_flight,
                      "ApproximateNumberOfMessagesDelayed": depth.delayed}
        return {"Attributes": {k: str(v) for k, v in counts.items()}}


def _receipt(body: dict[str, Any]) -> str:
    handle = body.get("ReceiptHandle")
    if not isinstance(handle, str) or not handle:
        raise SqsError("MissingParameter", "ReceiptHandle is required")
    return handle
