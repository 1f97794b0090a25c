"""The pool's queue as the worker sees it: botocore SQS in both modes (real SQS in AWS, the
embedded server's SQS-compatible endpoint locally: one code path, as docs/architecture.md
says)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sluice.profiles import Connection

log = logging.getLogger("sluice.worker")

#: SQS long polling waits at most 20 s
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
MAX_WAIT_SECONDS = 20
MAX_MESSAGES = 10
#: How often a worker waiting on a long poll looks at its stop flag: it stops within this much
#: of SIGTERM instead of waiting the poll out (checking a flag costs no request).
STOP_CHECK_SECONDS = 0.1


class PoolQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.url = queue_url

    @classmethod
    def connect(cls, connection: Connection, pool: str, queue_url: str | None = None
                ) -> PoolQueue:
        from botocore.config import Config

        from .sqs_client import sqs_client

        config = Config(retries={"max_attempts": 3, "mode": "standard"},
                        read_timeout=MAX_WAIT_SECONDS + 10, connect_timeout=5)
        if connection.kind == "aws":
            sqs: Any = sqs_client(region_name=connection.region, config=config)
        else:
            if not connection.sqs_endpoint:
                from sluice.exceptions import ConfigurationError

                raise ConfigurationError("the profile has no sqs_endpoint; restart "
                                         "`sluice server start` to refresh the local profile")
            from sluice.tokens import sqs_credentials

            # The embedded server checks the SigV4 signature against the token (a pool token
            # reaches only its pool's queue).
            access_key, secret = sqs_credentials(connection.api_token or "sluice")
            sqs = sqs_client(endpoint_url=connection.sqs_endpoint,
                             region_name="us-east-1", aws_access_key_id=access_key,
                             aws_secret_access_key=secret, config=config,
                             verify=connection.ca_bundle or None)
        url = queue_url or sqs.get_queue_url(QueueName=pool)["QueueUrl"]
        return cls(sqs, url)

    def receive(self, max_messages: int, wait_seconds: int, visibility_timeout: int
                ) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max(1, min(MAX_MESSAGES, max_messages)),
            WaitTimeSeconds=min(MAX_WAIT_SECONDS, wait_seconds),
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"])
        return answer.get("Messages", [])

    def receive_unless_stopped(self, stopping: threading.Event, max_messages: int,
                               wait_seconds: int, visibility_timeout: int
                               ) -> list[dict[str, Any]]:
        """`receive`, but return [] as soon as `stopping` is set instead of waiting the long
        poll out. The poll goes on in a daemon thread (one request, as before: nothing is added
        while idle); messages it brings after it was abandoned are made visible again at once,
        and if the process exits first they reappear after their visibility timeout (no
        message is lost either way). Errors are raised as `receive` raises them."""
        lock = threading.Lock()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def poll() -> None:
            try:
                result: dict[str, Any] = {"messages": self.receive(
                    max_messages, wait_seconds, visibility_timeout)}
            except Exception as exc:  # handed to the caller, which decides
                result = {"error": exc}
            with lock:
                if not outcome.get("abandoned"):
                    outcome.update(result)
                    done.set()
                    return
            self.give_back(result.get("messages", []))

        threading.Thread(target=poll, daemon=True, name="sluice-poll").start()
        while not done.wait(STOP_CHECK_SECONDS):
            with lock:
                if stopping.is_set() and not done.is_set():
                    outcome["abandoned"] = True
                    return []
        if "error" in outcome:
            raise outcome["error"]
        return outcome["messages"]

    def give_back(self, messages: list[dict[str, Any]]) -> None:
        """Make received messages visible again at once (for another worker or a restart)."""
        for message in messages:
            try:
                self.change_visibility(message["ReceiptHandle"], 0)
            except Exception as exc:
                log.warning("could not return message %s: %s", message.get("MessageId"), exc)

    def delete(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def change_visibility(self, receipt: str, seconds: int) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt,
                                           VisibilityTimeout=seconds)
