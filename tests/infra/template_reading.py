"""Reading synthesized CloudFormation: references, policy statements, flattened values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sluice_infra.acknowledgments import flatten_reference


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def refers_to(value: Any, logical_id: str) -> bool:
    """Whether a CloudFormation value mentions `logical_id` (Ref or GetAtt, at any depth)."""
    text = json.dumps(value)
    return f'"Ref": "{logical_id}"' in text or f'"Fn::GetAtt": ["{logical_id}"' in text


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id of the policy or role, statement) for every IAM statement in the template."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in properties["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement


def policy_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """The statements of the policies attached to a role (its DefaultPolicy)."""
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and any(
                refers_to(role, role_id) for role in resource["Properties"]["Roles"]):
            found += resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def actions_of(policy: list[dict[str, Any]]) -> set[str]:
    return {action for statement in policy for action in as_list(statement["Action"])}


def flat(value: Any) -> str:
    """A value as cdk-nag prints it: `<Logical.Attr>`, `<AWS::Region>`..."""
    return flatten_reference(value)
