"""`sluice profile create NAME --stack STACK`: an AWS profile from the stack's outputs (a
CloudFormation stack in moto stands in for the deployed one)."""

from __future__ import annotations

import json

import boto3
import moto
import pytest

from sluice import stack_outputs
from sluice.cli import main
from sluice.profiles import load_profiles, resolve_connection

REGION = "eu-west-1"
API = "https://abc123.execute-api.eu-west-1.amazonaws.com/"
QUEUES = {"default": "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-default",
          "etl": "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-etl"}


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")
                        }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with moto.mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def create_stack(cloudformation, name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def sluice_outputs() -> dict[str, str]:
    return {stack_outputs.API_URL: API, stack_outputs.REGION: REGION,
            stack_outputs.BUNDLE_BUCKET: "prod-bundles-1x2y",
            stack_outputs.WORKER_POLICY_ARN: "arn:aws:iam::123456789012:policy/worker",
            stack_outputs.QUEUE_URLS: json.dumps(QUEUES)}


def test_creates_an_aws_profile_from_the_stack_outputs(aws, capsys):
    create_stack(aws, "SluiceProd", sluice_outputs())
    assert main(["profile", "create", "prod", "--stack", "SluiceProd", "--region", REGION,
                 "--use"]) == 0
    assert "prod" in capsys.readouterr().out
    profiles = load_profiles()
    assert profiles.active == "prod"
    profile = profiles.profiles["prod"]
    assert profile.kind == "aws" and profile.api_url == API.rstrip("/")
    assert (profile.region, profile.stack_name) == (REGION, "SluiceProd")
    assert profile.bundle_bucket == "prod-bundles-1x2y" and profile.queue_urls == QUEUES
    connection = resolve_connection()
    assert (connection.kind, connection.region, connection.profile) == ("aws", REGION, "prod")


def test_the_region_can_come_from_the_environment_and_json_output(aws, monkeypatch, capsys):
    create_stack(aws, "SluiceProd", sluice_outputs())
    monkeypatch.setenv("AWS_REGION", REGION)
    assert main(["profile", "create", "prod", "--stack", "SluiceProd", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["api_url"] == API.rstrip("/") and answer["queue_urls"] == QUEUES
    assert answer["active"] is True  # the first profile becomes active


def test_a_missing_stack_is_not_found_naming_stack_and_region(aws, capsys):
    assert main(["profile", "create", "prod", "--stack", "Nope", "--region", REGION]) == 3
    error = capsys.readouterr().err
    assert "Nope" in error and REGION in error
    assert load_profiles().profiles == {}


def test_a_stack_that_is_not_a_control_plane_is_refused(aws, capsys):
    create_stack(aws, "Other", {"Something": "else"})
    assert main(["profile", "create", "prod", "--stack", "Other", "--region", REGION]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert stack_outputs.API_URL in error and "Sluice control plane" in error


def test_no_region_anywhere_says_how_to_give_one(aws, capsys):
    assert main(["profile", "create", "prod", "--stack", "SluiceProd"]) == 2
    assert "--region" in capsys.readouterr().err
