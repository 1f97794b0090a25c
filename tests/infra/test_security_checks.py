"""cdk-nag `AwsSolutionsChecks`: nothing unacknowledged, and every acknowledgment reasoned."""

from __future__ import annotations

import re

from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from .conftest import DEFAULT_STACK, FULL_STACK

#: The kinds of findings the construct accepts; a new kind needs a review (and this list).
ACCEPTED_RULES = {
    "AwsSolutions-IAM5",  # wildcard resources: index/*, <prefix>-* queues, bundles/*, routes
    "AwsSolutions-S1",    # no server access logs on the bundle bucket
    "AwsSolutions-SNS2",  # alarm topic without a customer-managed KMS key
    "AwsSolutions-SQS3",  # the automations' dead-letter queue (a DLQ of a rule and a function)
    "AwsSolutions-L1",    # Python one release behind the newest, so the asset ships bytecode
}


def test_aws_solutions_checks_find_nothing_unacknowledged(synthesized):
    assert synthesized.nag_findings == []


def _acknowledgments(stack: Stack) -> dict[str, dict[str, str]]:
    """{construct path: {rule id: reason}} of the stack's acknowledgments of cdk-nag's
    AwsSolutions rules (aws-cdk-lib acknowledges some template warnings of its own)."""
    found: dict[str, dict[str, str]] = {}
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == key:
                found.setdefault(construct.node.path, {}).update(
                    {rule: reason for rule, reason in entry.data.items()
                     if "AwsSolutions-" in rule})
    return {path: rules for path, rules in found.items() if rules}


def test_every_acknowledgment_gives_its_reason(synthesized):
    for name in (DEFAULT_STACK, FULL_STACK):
        acknowledged = _acknowledgments(synthesized.stacks[name])
        assert acknowledged, name
        for path, rules in acknowledged.items():
            for rule, reason in rules.items():
                base = re.sub(r"^annotation::", "", rule, flags=re.I).split("[")[0]
                assert base in ACCEPTED_RULES, (path, rule)
                assert len(reason) >= 60 and reason.endswith("."), (path, rule, reason)


def test_the_checks_do_catch_a_flaw():
    # The same plumbing on a deliberately flawed stack: proves the check is not vacuous.
    app = App()
    stack = Stack(app, "Flawed")
    sqs.Queue(stack, "Plain")  # no TLS policy, no dead-letter queue
    app.synth()
    report = AwsSolutionsChecks().validate_scope(app)
    rules = {violation.rule_name for violation in report.violations}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules
