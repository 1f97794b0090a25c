"""Acknowledged findings of security checks (cdk-nag's `AwsSolutionsChecks`), each with its
reason, recorded through CDK's own `Validations` API so the construct needs no cdk-nag at run
time (cdk-nag is a test dependency; it reads these acknowledgments).

cdk-nag reports IAM wildcard findings one by one, named after the flattened resource
(`AwsSolutions-IAM5[Resource::<TableLogicalId.Arn>/index/*]`), so `acknowledge_wildcard_resources`
derives those names from the statements themselves: a wildcard nobody reasoned about still
fails the check.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept finding `rule` (e.g. "AwsSolutions-S1") on `construct` and everything in it."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def flatten_reference(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it: `<Logical.Attr>` for GetAtt,
    `<Logical>` for Ref, joins joined, `${X}` of Fn::Sub as `<X>`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten_reference(item) for item in items)
        if "Fn::Sub" in value:
            return flatten_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_reference(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def acknowledge_wildcard_resources(construct: IConstruct, statement: iam.PolicyStatement,
                                   reason: str) -> None:
    """Accept the IAM5 (wildcard resource) findings of `statement`, attached to `construct`
    (a role, or a managed policy). Wildcard actions are never acknowledged: none are used."""
    stack = Stack.of(construct)
    for resource in statement.resources:
        flat = flatten_reference(stack.resolve(resource))
        if "*" in flat:
            acknowledge(construct, f"AwsSolutions-IAM5[Resource::{flat}]", reason)
