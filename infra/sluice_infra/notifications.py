"""What automations' `notify` actions may reach on AWS: the stack's notification topic (email,
SMS, chat integrations subscribe to it), any other topics the operator names, and the secrets
that hold webhook URLs and signing keys.

Reactive automations act in the automations function (`automation_function.py`), proactive ones
in the monitor; every function's role gets these grants."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from .acknowledgments import acknowledge

#: `sns:Publish` only: automations never create, subscribe or read topics.
PUBLISH_ACTIONS = ("sns:Publish",)
#: How `sluice.secrets` reads a secret: SSM Parameter Store first, then Secrets Manager.
SECRET_READ_ACTIONS = ("ssm:GetParameter",)
SECRETS_MANAGER_READ_ACTIONS = ("secretsmanager:GetSecretValue",)


class NotificationAccess(Construct):
    """The notification topic and the grants of `notify` actions to `roles`."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str,
                 roles: Sequence[iam.IRole], topic_arns: Sequence[str] = (),
                 secret_names: Sequence[str] = ()) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.topic = sns.Topic(self, "Topic", display_name=f"Sluice notifications ({prefix})",
                               enforce_ssl=True)
        acknowledge(self.topic, "AwsSolutions-SNS2",
                    "Notifications carry what their automation's template puts in them; a "
                    "customer-managed key would cost $1 a month at idle. Encrypt by naming "
                    "your own topic (sluice:notificationTopicArns) instead.")
        topics = [self.topic.topic_arn, *topic_arns]
        secrets = [name.strip("/") for name in secret_names if name.strip("/")]
        for role in roles:
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=list(PUBLISH_ACTIONS), resources=topics))
            if secrets:
                role.add_to_principal_policy(iam.PolicyStatement(
                    actions=list(SECRET_READ_ACTIONS),
                    resources=[stack.format_arn(service="ssm", resource="parameter",
                                                resource_name=name) for name in secrets]))
                # Secrets Manager appends six random characters to a secret's ARN.
                role.add_to_principal_policy(iam.PolicyStatement(
                    actions=list(SECRETS_MANAGER_READ_ACTIONS),
                    resources=[stack.format_arn(service="secretsmanager", resource="secret",
                                                resource_name=f"{name}-??????",
                                                arn_format=_colon_format())
                               for name in secrets]))


def _colon_format():  # noqa: ANN202 - the CDK enum
    from aws_cdk import ArnFormat

    return ArnFormat.COLON_RESOURCE_NAME
