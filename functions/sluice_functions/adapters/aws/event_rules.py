"""One EventBridge rule per deployment that runs on events (`on_event`): the rule carries the
deployment's pattern and targets the API function, which starts the run
(`automations.on_event.on_delivered`).

Rule name: `<queue prefix>-on-event-<first 16 hex of sha256(deployment id)>` (rule names are at
most 64 characters, and the IAM grant of the API role covers `<queue prefix>-on-event-*` only).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from botocore.exceptions import ClientError

from sluice.exceptions import ConfigurationError
from sluice.models import Deployment

from .errors import aws_errors, error_code

#: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html
MAX_RULE_NAME_CHARS = 64
RULE_INFIX = "-on-event-"
#: The one target of each rule (the API function).
TARGET_ID = "sluice-api"
#: Set to the API function's ARN to override the one the handler reads from its context.
ENV_TARGET_ARN = "SLUICE_ON_EVENT_TARGET_ARN"


def rule_name(queue_prefix: str, deployment_id: str) -> str:
    """The name of the deployment's rule; raises `ConfigurationError` when the prefix is too
    long for EventBridge's 64 characters."""
    name = f"{queue_prefix}{RULE_INFIX}{hashlib.sha256(deployment_id.encode()).hexdigest()[:16]}"
    if len(name) > MAX_RULE_NAME_CHARS:
        raise ConfigurationError(f"EventBridge rule {name!r} is longer than "
                                 f"{MAX_RULE_NAME_CHARS} characters; use a queue prefix of at "
                                 f"most {MAX_RULE_NAME_CHARS - len(RULE_INFIX) - 16}")
    return name


class EventBridgeRules:
    """Creates, replaces and deletes deployments' rules on one bus, all targeting `target_arn`."""

    def __init__(self, client: Any, *, queue_prefix: str, bus_name: str, target_arn: str
                 ) -> None:
        self._client = client
        self.queue_prefix = queue_prefix
        self.bus_name = bus_name
        self.target_arn = target_arn

    def name_of(self, deployment_id: str) -> str:
        return rule_name(self.queue_prefix, deployment_id)

    def put(self, deployment: Deployment) -> str:
        """Create or update the deployment's rule (its pattern; disabled while the deployment
        is paused) and point it at the API function; returns the rule's ARN."""
        assert deployment.on_event is not None
        name = self.name_of(deployment.id)
        with aws_errors("put the on-event rule"):
            answer = self._client.put_rule(
                Name=name, EventBusName=self.bus_name,
                EventPattern=json.dumps(deployment.on_event.pattern),
                State="DISABLED" if deployment.paused else "ENABLED",
                Description=f"Sluice: runs {deployment.flow_name}/{deployment.name} "
                            f"({deployment.id})"[:512])
            # No input transformer: the API function gets the event as EventBridge matched it
            # and re-matches it against the deployments' patterns.
            self._client.put_targets(Rule=name, EventBusName=self.bus_name,
                                     Targets=[{"Id": TARGET_ID, "Arn": self.target_arn}])
        return answer["RuleArn"]

    def delete(self, deployment_id: str) -> bool:
        """Delete the deployment's rule and its target; False when there was none."""
        try:
            name = self.name_of(deployment_id)
            with aws_errors("delete the on-event rule"):
                try:
                    self._client.remove_targets(Rule=name, EventBusName=self.bus_name,
                                                Ids=[TARGET_ID])
                    self._client.delete_rule(Name=name, EventBusName=self.bus_name)
                except ClientError as error:
                    if error_code(error) == "ResourceNotFoundException":
                        return False
                    raise
        except ConfigurationError:
            return False
        return True


def rules_from_environment(invoked_function_arn: str | None) -> EventBridgeRules | None:
    """The rules adapter of the API function: its own ARN is the target (the construct cannot
    set it in the function's environment: that would make the function depend on itself), so
    it comes from `SLUICE_ON_EVENT_TARGET_ARN` or from the invocation's context."""
    import boto3

    from ...config import ControlPlaneSettings

    target = os.environ.get(ENV_TARGET_ARN) or _unqualified(invoked_function_arn)
    if not target:
        return None
    settings = ControlPlaneSettings()
    return EventBridgeRules(boto3.client("events"), queue_prefix=settings.effective_queue_prefix,
                            bus_name=settings.event_bus_name, target_arn=target)


def _unqualified(arn: str | None) -> str | None:
    """`arn:aws:lambda:r:a:function:name` without a `:version` or `:alias` qualifier."""
    if not arn:
        return None
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 else arn
