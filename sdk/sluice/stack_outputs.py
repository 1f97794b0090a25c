"""The CloudFormation outputs of a deployed Sluice stack: written by the CDK construct
(`sluice_infra`), read by `sluice profile create`. Defined here, in the SDK, because the CLI
must read them without importing the CDK, and `sluice_infra` may import `sluice` (never the
reverse).

The construct pins these as the outputs' logical ids, so they are the same whether the control
plane is its own stack or part of a user's CDK app.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .exceptions import ConfigurationError, NotFound, SluiceError
from .profiles import Profile

API_URL = "SluiceApiUrl"
REGION = "SluiceRegion"
#: The SNS topic automations' notify actions publish to.
NOTIFICATION_TOPIC_ARN = "SluiceNotificationTopicArn"
BUNDLE_BUCKET = "SluiceBundleBucket"
WORKER_POLICY_ARN = "SluiceWorkerPolicyArn"
#: JSON object: pool name -> ARN of that pool's worker policy.
WORKER_POLICY_ARNS = "SluiceWorkerPolicyArns"
#: A JSON object {pool name: queue URL} of the pools whose queues the stack created.
QUEUE_URLS = "SluiceQueueUrls"

#: The DynamoDB table and the schema version the stack's functions understand
#: (`sluice admin status|migrate` read them).
TABLE_NAME = "SluiceTableName"
SCHEMA_VERSION = "SluiceSchemaVersion"

#: What `sluice profile create` needs; a stack without them is not a Sluice control plane.
REQUIRED = (API_URL, REGION, QUEUE_URLS)
ALL = (API_URL, REGION, BUNDLE_BUCKET, WORKER_POLICY_ARN, WORKER_POLICY_ARNS,
       QUEUE_URLS, NOTIFICATION_TOPIC_ARN, TABLE_NAME, SCHEMA_VERSION)


def read_stack_outputs(stack_name: str, region: str | None = None, *,
                       cloudformation: Any = None) -> tuple[str, dict[str, str]]:
    """(region, {output key: value}) of a deployed stack, read with boto3 from the standard AWS
    credential chain. Raises `NotFound` for a missing stack, `ConfigurationError` when the
    region or credentials are missing or the stack is not a Sluice control plane."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        raise ConfigurationError("reading a stack needs boto3: pip install 'sluice-flows[worker]'"
                                 ) from None
    if cloudformation is None:
        # boto3 reads AWS_DEFAULT_REGION and the config file; AWS_REGION is what EC2 user data
        # and most tools set.
        session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION"))
        if not session.region_name:
            raise ConfigurationError("no AWS region: pass --region or set AWS_REGION")
        cloudformation = session.client("cloudformation")
    region = cloudformation.meta.region_name
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError:
        raise ConfigurationError("no AWS credentials found: configure them (aws configure, "
                                 "AWS_PROFILE, an instance role)") from None
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise NotFound(f"no stack {stack_name!r} in {region}: deploy it first (see "
                           "README, Deploying to AWS) or pass --region") from None
        raise SluiceError(f"could not read stack {stack_name!r}: {message}") from None
    except BotoCoreError as error:
        raise SluiceError(f"could not read stack {stack_name!r}: {error}") from None
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in REQUIRED if key not in outputs]
    if missing:
        raise ConfigurationError(
            f"stack {stack_name!r} ({stack.get('StackStatus', '?')}) has no output "
            f"{', '.join(missing)}: is it a Sluice control plane, and is its deployment done?")
    return region, outputs


def profile_from_stack(stack_name: str, region: str | None = None, *,
                       cloudformation: Any = None) -> Profile:
    """An `aws` profile for the control plane a stack deployed."""
    region, outputs = read_stack_outputs(stack_name, region, cloudformation=cloudformation)
    try:
        queue_urls = json.loads(outputs[QUEUE_URLS])
    except ValueError:
        raise ConfigurationError(f"stack {stack_name!r}: output {QUEUE_URLS} is not JSON"
                                 ) from None
    return Profile(kind="aws", api_url=outputs[API_URL].rstrip("/"),
                   region=outputs.get(REGION) or region, stack_name=stack_name,
                   bundle_bucket=outputs.get(BUNDLE_BUCKET), queue_urls=queue_urls)
