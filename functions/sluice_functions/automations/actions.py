"""What an automation does when it fires: each action goes through the service layer (so it
obeys the same rules as an API call) or sends a notification.

An action failing raises `ActionFailed` with a message naming the problem and the fix; the
engine records it as a `sluice.automation.action-failed` event and goes on with the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.exceptions import SluiceError
from sluice.models import (
    Automation,
    CancelRunAction,
    DeploymentRunRequest,
    DeploymentUpdate,
    NotifyAction,
    PauseDeploymentAction,
    PausePoolAction,
    PoolUpdate,
    ResumeDeploymentAction,
    ResumePoolAction,
    ResumeRunAction,
    RunDeploymentAction,
    SuspendRunAction,
)

from .templates import TemplateFailed, render, render_value

#: Seconds a notification may take: it holds the automations thread (embedded) or function.
NOTIFY_TIMEOUT_SECONDS = 5.0
#: SNS subjects are at most 100 printable ASCII characters
#: (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
MAX_SNS_SUBJECT_CHARS = 100
SIGNATURE_HEADER = "x-sluice-signature"


class ActionFailed(SluiceError):
    """An action of an automation could not be carried out."""

    code = "automation_action_failed"


@dataclass
class ActionRuntime:
    """What actions reach outside the control plane with (tests replace the parts)."""

    #: The value of a Sluice secret, or None when there is none of that name.
    secret: Callable[[str], str | None] = field(default_factory=lambda: _default_secret_lookup())
    #: POST JSON bytes with headers to a URL; returns the HTTP status.
    post: Callable[[str, bytes, dict[str, str]], int] = field(
        default_factory=lambda: _http_post)
    #: An SNS client for a region (boto3).
    sns_client: Callable[[str | None], Any] = field(default_factory=lambda: _boto3_sns)


def _default_secret_lookup() -> Callable[[str], str | None]:
    from sluice.secrets import AwsSecretStore, LocalSecretStore
    from sluice.settings import get_settings

    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("SLUICE_KIND") == "aws":
        return AwsSecretStore().get
    return LocalSecretStore(get_settings().home / "secrets").get


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with the standard library: the Lambda asset ships no HTTP client (httpx is the
    SDK's), and one request needs none."""
    import urllib.error
    import urllib.request

    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url[:40]!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as answer:  # noqa: S310 - scheme checked above
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def _boto3_sns(region: str | None) -> Any:
    import boto3

    return boto3.client("sns", region_name=region)


def execute(action: Any, *, automation: Automation, context: dict[str, Any], ports: Any,
            runtime: ActionRuntime, key: str, now: datetime) -> str:
    """Carry out one action; returns a short description of what was done."""
    from .. import service
    from ..service import pools, suspension

    by = f"automation {automation.name!r}"
    try:
        if isinstance(action, RunDeploymentAction):
            parameters = render_value(action.parameters, context, field="parameters")
            request = DeploymentRunRequest(
                parameters=parameters,
                # A second attempt with the same key (a retry) creates no second run.
                idempotency_key=f"automation:{automation.id}:{key}"[:256])
            run = service.run_deployment(action.deployment, request, store=ports.store,
                                         queue=ports.queue, metrics=ports.metrics,
                                         created_by=f"automation:{automation.id}", now=now)
            return f"started run {run.id} of {action.deployment}"
        if isinstance(action, CancelRunAction):
            run_id = render(action.run, context, field="run")
            service.cancel_flow_run(run_id, store=ports.store, metrics=ports.metrics, now=now,
                                    message=f"cancelled by {by}")
            return f"cancelled run {run_id}"
        if isinstance(action, SuspendRunAction):
            run_id = render(action.run, context, field="run")
            message = (render(action.message, context, field="message") if action.message
                       else f"suspended by {by}")
            answer = suspension.suspend_flow_run(run_id, store=ports.store, queue=ports.queue,
                                                 metrics=ports.metrics, now=now, message=message)
            return f"suspended run {run_id}" + (f" ({answer.reason})" if answer.reason else "")
        if isinstance(action, ResumeRunAction):
            run_id = render(action.run, context, field="run")
            suspension.resume_flow_run(run_id, store=ports.store, queue=ports.queue,
                                       metrics=ports.metrics, now=now,
                                       message=f"resumed by {by}")
            return f"resumed run {run_id}"
        if isinstance(action, (PauseDeploymentAction, ResumeDeploymentAction)):
            paused = isinstance(action, PauseDeploymentAction)
            service.update_deployment(action.deployment, DeploymentUpdate(paused=paused),
                                      store=ports.store, now=now)
            return f"{'paused' if paused else 'resumed'} deployment {action.deployment}"
        if isinstance(action, (PausePoolAction, ResumePoolAction)):
            paused = isinstance(action, PausePoolAction)
            pools.update_pool(action.pool, PoolUpdate(paused=paused), store=ports.store,
                              queue=ports.queue, now=now)
            return f"{'paused' if paused else 'resumed'} pool {action.pool}"
        if isinstance(action, NotifyAction):
            return _notify(action, automation=automation, context=context, runtime=runtime)
    except TemplateFailed as exc:
        raise ActionFailed(str(exc)) from None
    except ActionFailed:
        raise
    except SluiceError as exc:
        raise ActionFailed(f"{action.type} failed: {exc}") from None
    raise ActionFailed(f"unknown action type {getattr(action, 'type', action)!r}")


def _notify(action: NotifyAction, *, automation: Automation, context: dict[str, Any],
            runtime: ActionRuntime) -> str:
    subject = render(action.subject, context, field="subject")
    body = render(action.body, context, field="body")
    if action.via == "sns":
        return _publish_sns(action, subject=subject, body=body, runtime=runtime)
    url = _secret(action.url_secret or "", runtime, purpose=f"the {action.via} URL")
    if action.via == "slack":
        payload = json.dumps({"text": f"*{subject}*\n{body}"}).encode()
        headers = {"content-type": "application/json"}
    else:
        payload = json.dumps({"subject": subject, "message": body,
                              "automation": context["automation"],
                              "event": context["event"], "sent": context["now"]},
                             separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        if action.hmac_secret:
            key = _secret(action.hmac_secret, runtime, purpose="the webhook signing key")
            headers[SIGNATURE_HEADER] = "sha256=" + signature(key, payload)
    try:
        status = runtime.post(url, payload, headers)
    except Exception as exc:  # any transport failure is the action's failure, not ours
        raise ActionFailed(f"{action.via} notification failed: {type(exc).__name__}: {exc}; "
                           f"check the URL in secret {action.url_secret!r}") from None
    if not 200 <= status < 300:
        raise ActionFailed(f"{action.via} notification answered HTTP {status}; check the URL "
                           f"in secret {action.url_secret!r} and the receiver")
    return f"notified via {action.via}"


def _publish_sns(action: NotifyAction, *, subject: str, body: str,
                 runtime: ActionRuntime) -> str:
    arn = action.topic_arn or ""
    region = arn.split(":")[3] if arn.count(":") >= 5 else None
    clean_subject = "".join(c for c in subject if 32 <= ord(c) < 127)[:MAX_SNS_SUBJECT_CHARS]
    try:
        answer = runtime.sns_client(region).publish(TopicArn=arn, Subject=clean_subject or "Sluice",
                                                    Message=body)
    except Exception as exc:  # botocore errors: access denied, unknown topic, throttling
        raise ActionFailed(f"SNS Publish to {arn} failed: {type(exc).__name__}: {exc}; check "
                           "the topic exists and the control plane may sns:Publish to it"
                           ) from None
    return f"published SNS message {answer.get('MessageId', '?')}"


def _secret(name: str, runtime: ActionRuntime, *, purpose: str) -> str:
    try:
        value = runtime.secret(name)
    except Exception as exc:
        raise ActionFailed(f"reading secret {name!r} ({purpose}) failed: {exc}") from None
    if not value:
        raise ActionFailed(f"no secret {name!r} holding {purpose}; create it with "
                           f"`sluice secret set {name}`")
    return value.strip()


def signature(key: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body` with `key`: what `x-sluice-signature` carries after
    `sha256=`. Receivers recompute it over the raw body and compare in constant time."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
