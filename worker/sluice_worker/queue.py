"""The pool's queue as the worker sees it: boto3 SQS in both modes (real SQS in AWS, the
embedded server's SQS-compatible endpoint locally)."""

from __future__ import annotations

from typing import Any

from sluice.profiles import Connection

#: SQS long polling waits at most 20 s
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
MAX_WAIT_SECONDS = 20
MAX_MESSAGES = 10


class PoolQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.url = queue_url

    @classmethod
    def connect(cls, connection: Connection, pool: str, queue_url: str | None = None
                ) -> PoolQueue:
        import boto3
        from botocore.config import Config

        config = Config(retries={"max_attempts": 3, "mode": "standard"},
                        read_timeout=MAX_WAIT_SECONDS + 10, connect_timeout=5)
        if connection.kind == "aws":
            sqs = boto3.client("sqs", region_name=connection.region, config=config)
        else:
            if not connection.sqs_endpoint:
                from sluice.exceptions import ConfigurationError

                raise ConfigurationError("the profile has no sqs_endpoint; restart "
                                         "`sluice server start` to refresh the local profile")
            from sluice.tokens import sqs_credentials

            # The embedded server checks the SigV4 signature against the token (a pool token
            # reaches only its pool's queue).
            access_key, secret = sqs_credentials(connection.api_token or "sluice")
            sqs = boto3.client("sqs", endpoint_url=connection.sqs_endpoint,
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

    def delete(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def change_visibility(self, receipt: str, seconds: int) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt,
                                           VisibilityTimeout=seconds)
