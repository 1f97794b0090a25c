"""The worker's queue (boto3, as in AWS) reaches the embedded server's SQS endpoint over TLS
with the profile's CA bundle, signed with the pool token's credentials."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from sluice.profiles import Connection
from sluice.tokens import sqs_credentials
from sluice_worker.queue import PoolQueue

from .server_network_support import TOKEN
from .test_server_network_tls import certificate, tls_server  # noqa: F401 - fixtures


def test_the_worker_queue_receives_and_deletes_over_tls(tls_server, certificate):  # noqa: F811
    # Given a message on the default pool's queue
    access_key, secret = sqs_credentials(TOKEN)
    sender = boto3.client("sqs", endpoint_url=tls_server.sqs_endpoint, region_name="us-east-1",
                          aws_access_key_id=access_key, aws_secret_access_key=secret,
                          verify=str(certificate[0]))
    url = sender.get_queue_url(QueueName="default")["QueueUrl"]
    sender.send_message(QueueUrl=url, MessageBody="over tls")
    # When the worker's queue connects with the profile's CA bundle and receives
    connection = Connection(api_url=tls_server.url, api_token=TOKEN,
                            sqs_endpoint=tls_server.sqs_endpoint,
                            ca_bundle=str(certificate[0]))
    queue = PoolQueue.connect(connection, "default")
    (message,) = queue.receive(1, 1, 30)
    # Then it gets the message, with the attribute the worker reads, and can delete it
    assert message["Body"] == "over tls"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    queue.delete(message["ReceiptHandle"])
    assert queue.receive(1, 0, 30) == []


def test_a_wrong_token_is_refused_by_the_endpoint(tls_server, certificate):  # noqa: F811
    connection = Connection(api_url=tls_server.url, api_token="not-the-token",
                            sqs_endpoint=tls_server.sqs_endpoint,
                            ca_bundle=str(certificate[0]))
    with pytest.raises(ClientError) as raised:
        PoolQueue.connect(connection, "default")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
