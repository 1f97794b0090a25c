"""The embedded server in-process: the gateway, the SQS endpoint, tokens, bundles."""

from __future__ import annotations

import hashlib

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from sluice.exceptions import ConfigurationError
from sluice_functions.embedded import EmbeddedServer


@pytest.fixture
def server(tmp_path):
    plane = EmbeddedServer(data_dir=tmp_path / "data", port=0, tick_seconds=3600).start()
    yield plane
    plane.stop()


def sqs_client(endpoint: str, secret: str = "sluice"):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="sluice", aws_secret_access_key=secret)


def test_refuses_a_public_address_without_a_token(tmp_path):
    with pytest.raises(ConfigurationError, match="--token"):
        EmbeddedServer(data_dir=tmp_path, host="0.0.0.0", port=0)


def test_sqs_endpoint_speaks_the_json_protocol_to_boto3(server):
    sqs = sqs_client(server.sqs_endpoint)
    url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"hello": 1}', DelaySeconds=0)
    answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=30,
                                 MessageSystemAttributeNames=["ApproximateReceiveCount"])
    (message,) = answer["Messages"]
    assert message["Body"] == '{"hello": 1}'
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                  VisibilityTimeout=60)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    with pytest.raises(ClientError) as info:
        sqs.get_queue_url(QueueName="no-such-pool")
    assert info.value.response["Error"]["Code"] in ("QueueDoesNotExist",
                                                    "AWS.SimpleQueueService.NonExistentQueue")
    with pytest.raises(ClientError, match="MaxNumberOfMessages"):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=0)


def test_a_token_guards_the_api_and_the_queue(tmp_path):
    plane = EmbeddedServer(data_dir=tmp_path, host="127.0.0.1", port=0, token="s3cret",
                           tick_seconds=3600).start()
    try:
        assert httpx.get(f"{plane.url}/health").status_code == 401
        assert httpx.get(f"{plane.url}/health",
                         headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{plane.url}/health",
                         headers={"authorization": "Bearer s3cret"}).status_code == 200
        # SQS requests must be SigV4-signed with the token as the secret key
        good = sqs_client(plane.sqs_endpoint, secret="s3cret")
        assert good.get_queue_url(QueueName="default")["QueueUrl"]
        with pytest.raises(ClientError):
            sqs_client(plane.sqs_endpoint, secret="guess").get_queue_url(QueueName="default")
    finally:
        plane.stop()


def test_bundle_bytes_round_trip_and_are_content_addressed(server):
    data = b"PK zip bytes"
    digest = hashlib.sha256(data).hexdigest()
    location = httpx.post(f"{server.url}/bundles", json={"sha256": digest, "size": len(data)})
    assert location.status_code == 200 and location.json()["exists"] is False
    upload = location.json()["upload_url"]
    assert httpx.put(upload, content=b"other bytes").status_code == 400  # wrong hash refused
    assert httpx.put(upload, content=data).status_code == 200
    download = httpx.get(f"{server.url}/bundles/{digest}").json()["download_url"]
    assert httpx.get(download).content == data
    again = httpx.post(f"{server.url}/bundles", json={"sha256": digest, "size": len(data)})
    assert again.json()["exists"] is True


def test_requests_become_api_gateway_events_with_decoded_paths(server):
    created = httpx.post(f"{server.url}/deployments", json={
        "flow_name": "etl", "name": "night ly", "entrypoint": "f.py:etl"})
    assert created.status_code == 200, created.text
    found = httpx.get(f"{server.url}/deployments/etl/night%20ly")
    assert found.status_code == 200 and found.json()["name"] == "night ly"
    assert httpx.get(f"{server.url}/nope").json()["error"] == "route_not_found"
