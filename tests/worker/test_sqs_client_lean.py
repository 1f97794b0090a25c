"""The worker's SQS client (issue 20): botocore without boto3, keeping only the SQS part of
botocore's endpoint table, and resolving every endpoint as a boto3 client does."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from sluice_worker import sqs_client as lean

#: Regions of each kind of partition (commercial, China, GovCloud) and an opt-in one.
REGIONS = ("us-east-1", "eu-west-1", "ap-east-1", "cn-north-1", "us-gov-west-1")
FAKE_KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


def test_the_pruned_table_keeps_every_partition_with_only_sqs():
    # When the endpoint table is read through the child process
    path, data = lean.pruned_endpoints(None)
    # Then it names botocore's own file and keeps each partition, with the SQS entry only
    assert path.endswith("endpoints")
    assert len(data["partitions"]) >= 3
    for partition in data["partitions"]:
        assert list(partition["services"]) in (["sqs"], [])
        assert partition["regions"] and partition["dnsSuffix"]


@pytest.mark.parametrize("region", REGIONS)
def test_endpoints_resolve_as_with_boto3(region):
    # Given a boto3 client and the worker's client for the same region
    reference = boto3.client("sqs", region_name=region, **FAKE_KEYS)
    client = lean.sqs_client(region_name=region, **FAKE_KEYS)
    # Then they reach the same endpoint, signing for the same region
    assert client.meta.endpoint_url == reference.meta.endpoint_url
    assert client.meta.region_name == reference.meta.region_name


def test_a_failed_child_falls_back_to_the_full_table(monkeypatch):
    # Given a child process that fails
    monkeypatch.setattr(lean, "_PRUNE_ENDPOINTS", "raise SystemExit(3)")
    # When a client is made, Then it is made from the full table
    assert lean.pruned_endpoints(None) is None
    client = lean.sqs_client(region_name="eu-west-1", **FAKE_KEYS)
    assert client.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"


def test_the_worker_queue_does_not_import_boto3():
    probe = ("from sluice_worker.queue import PoolQueue\n"
             "from sluice_worker.sqs_client import sqs_client\n"
             "sqs_client(region_name='us-east-1', aws_access_key_id='a', "
             "aws_secret_access_key='b')\n"
             "import json, sys\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert "boto3" not in set(json.loads(done.stdout.splitlines()[-1]))
