"""The CloudFormation outputs of a deployed Sluice stack: written by the CDK construct
(`sluice_infra`), read by `sluice profile create`. Defined here, in the SDK, because the CLI
must read them without importing the CDK, and `sluice_infra` may import `sluice` (never the
reverse).

The construct pins these as the outputs' logical ids, so they are the same whether the control
plane is its own stack or part of a user's CDK app.
"""

from __future__ import annotations

API_URL = "SluiceApiUrl"
REGION = "SluiceRegion"
BUNDLE_BUCKET = "SluiceBundleBucket"
WORKER_POLICY_ARN = "SluiceWorkerPolicyArn"
#: A JSON object {pool name: queue URL} of the pools whose queues the stack created.
QUEUE_URLS = "SluiceQueueUrls"

#: What `sluice profile create` needs; a stack without them is not a Sluice control plane.
REQUIRED = (API_URL, REGION, QUEUE_URLS)
ALL = (API_URL, REGION, BUNDLE_BUCKET, WORKER_POLICY_ARN, QUEUE_URLS)
