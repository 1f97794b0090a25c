"""Deployments that run on events (`sluice deploy --on-event PATTERN`, `Flow.deploy(on_event=)`).

Embedded, every recorded Sluice event is seen as an EventBridge event (`envelope`) and matched
against the patterns of the deployments that have one; on AWS, EventBridge itself matches (one
rule per deployment, `adapters/aws/event_rules.py`) and invokes the API function, which
re-matches the delivered event to find the deployment(s). Either way a match starts one run with
the templated parameters, idempotent per (deployment, event id): a redelivered event starts no
second run.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sluice.exceptions import ServiceUnavailable, SluiceError, ValidationError
from sluice.models import MAX_PAGE_LIMIT, Deployment, FlowRun, SluiceEvent, utcnow
from sluice.models.deployments import MAX_EVENT_PATTERN_CHARS

from .patterns import PatternError, check_pattern, matches
from .templates import TemplateFailed, render_value

LOGGER = logging.getLogger(__name__)
#: `source` of a user's event whose payload names none (`sluice events emit NAME`).
USER_SOURCE = "sluice.user"
#: `source` of the control plane's own `sluice.*` events.
SLUICE_SOURCE = "sluice"
#: Who the runs were created by (shown by `sluice flow-run inspect`).
CREATED_BY = "on-event"
#: Runs started by events start runs whose events may match again; deeper than this is a loop.
MAX_NESTING = 3
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("on_event_nesting", default=0)
#: How long the on-event deployments read by one process stay trusted: a change made in this
#: process is seen at once (its `sluice.deployment.*` event invalidates the list), one made by
#: another process (a second server on the same files) within this.
ON_EVENT_CACHE_SECONDS = 10.0


class OnEventDeployments:
    """The deployments that run on events, listed once per `ttl_seconds` instead of on every
    recorded event (an `EventRecorder` holds one per control plane; see `on_recorded`)."""

    def __init__(self, *, ttl_seconds: float = ON_EVENT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._listed: tuple[float, list[Deployment]] | None = None

    def get(self, store: Any) -> list[Deployment]:
        """The listed deployments, read again from `store` when stale."""
        with self._lock:
            listed = self._listed
        if listed is not None and self._clock() - listed[0] < self._ttl:
            return listed[1]
        started = self._clock()
        deployments = list(_on_event_deployments(store))
        with self._lock:
            if self._listed is listed:  # no invalidation while reading: keep it
                self._listed = (started, deployments)
        return deployments

    def invalidate(self) -> None:
        """Forget the list (a deployment was created, changed or deleted)."""
        with self._lock:
            self._listed = None


def check_on_event(deployment: Deployment) -> None:
    """Raise `ValidationError` unless the deployment's event pattern is usable."""
    if deployment.on_event is None:
        return
    import json

    if len(json.dumps(deployment.on_event.pattern)) > MAX_EVENT_PATTERN_CHARS:
        raise ValidationError(f"on_event.pattern is longer than {MAX_EVENT_PATTERN_CHARS} "
                              "characters (EventBridge's limit); match on fewer values")
    try:
        check_pattern(deployment.on_event.pattern, where="on_event.pattern")
    except PatternError as exc:
        raise ValidationError(str(exc)) from None


def envelope(event: SluiceEvent) -> dict[str, Any]:
    """The EventBridge-shaped view of a Sluice event that patterns and templates see: source =
    the payload's `source` (else `sluice.user`, or `sluice` for the control plane's own events),
    detail-type = the event name, detail = the payload."""
    source = event.payload.get("source")
    if not isinstance(source, str) or not source:
        source = SLUICE_SOURCE if event.name.startswith("sluice.") else USER_SOURCE
    return {"version": "0", "id": event.id, "detail-type": event.name, "source": source,
            "account": "local", "region": "local",
            "time": event.occurred.isoformat().replace("+00:00", "Z"),
            "resources": [], "detail": event.model_dump(mode="json")["payload"]}


def is_eventbridge_invocation(event: Any) -> bool:
    """Whether a Lambda invocation is an EventBridge event (not an API Gateway request)."""
    return isinstance(event, dict) and "detail-type" in event and "source" in event \
        and "requestContext" not in event


def on_recorded(events: Sequence[SluiceEvent], *, ports: Any, now: datetime | None = None
                ) -> list[FlowRun]:
    """Embedded path: start the runs the freshly recorded `events` match. On AWS (rules in
    use, or events put on a bus) EventBridge does the matching, so nothing is done here.
    Never raises."""
    if ports is None or getattr(ports, "event_rules", None) is not None or not events \
            or _nesting.get() >= MAX_NESTING:
        return []
    if getattr(ports.publisher, "bus_name", None):  # AWS functions without rules (the ticks)
        return []
    try:
        candidates = _cached_on_event_deployments(ports)
    except Exception:  # noqa: BLE001 - recording an event must not fail on this
        LOGGER.exception("could not list the deployments that run on events")
        return []
    started: list[FlowRun] = []
    if not candidates:
        return []
    for event in events:
        started += _start_matching(envelope(event), candidates, ports=ports, now=now)
    return started


def on_delivered(delivered: dict[str, Any], *, ports: Any, now: datetime | None = None
                 ) -> dict[str, Any]:
    """AWS path: an event EventBridge delivered to the API function through a deployment's
    rule; starts the run(s) of the deployment(s) whose pattern it matches."""
    runs = _start_matching(delivered, list(_on_event_deployments(ports.store)), ports=ports,
                           now=now)
    return {"started": [run.id for run in runs]}


def _cached_on_event_deployments(ports: Any) -> list[Deployment]:
    """Through the cache of the store's event recorder, when it has one."""
    from ..service.event_log import recorder_of

    recorder = recorder_of(ports.store)
    cache = getattr(recorder, "on_event_deployments", None)
    if cache is None:
        return list(_on_event_deployments(ports.store))
    return cache.get(ports.store)


def _on_event_deployments(store: Any) -> Iterator[Deployment]:
    cursor = None
    while True:
        page = store.list_deployments(limit=MAX_PAGE_LIMIT, cursor=cursor)
        for deployment in page.items:
            if deployment.on_event is not None and not deployment.paused:
                yield deployment
        cursor = page.next_cursor
        if cursor is None:
            return


def _start_matching(delivered: dict[str, Any], deployments: list[Deployment], *, ports: Any,
                    now: datetime | None) -> list[FlowRun]:
    started = []
    for deployment in deployments:
        assert deployment.on_event is not None
        try:
            if not matches(deployment.on_event.pattern, delivered):
                continue
            started.append(start_run(deployment, delivered, ports=ports, now=now))
        except Exception:  # noqa: BLE001 - one deployment's failure must not stop the others
            LOGGER.exception("deployment %s/%s did not start on event %s",
                             deployment.flow_name, deployment.name, delivered.get("id"))
            ports.metrics.count("OnEventRunsFailed")
    return started


def start_run(deployment: Deployment, delivered: dict[str, Any], *, ports: Any,
              now: datetime | None = None) -> FlowRun:
    """One run of `deployment` for the event `delivered`: parameters rendered over `event`,
    idempotency key `on-event:<deployment id>:<event id>`. Raises `ValidationError` when a
    template does not render."""
    from sluice.models import DeploymentRunRequest

    from ..service.deployments import run_deployment

    assert deployment.on_event is not None
    try:
        parameters = render_value(deployment.on_event.parameters, {"event": delivered},
                                  field="on_event.parameters")
    except TemplateFailed as exc:
        raise ValidationError(f"{exc} (deployment {deployment.flow_name}/{deployment.name})"
                              ) from None
    request = DeploymentRunRequest(
        parameters=parameters,
        idempotency_key=f"on-event:{deployment.id}:{delivered.get('id', '')}"[:256])
    token = _nesting.set(_nesting.get() + 1)
    try:
        run = run_deployment(deployment.id, request, store=ports.store, queue=ports.queue,
                             metrics=ports.metrics, created_by=CREATED_BY, now=now or utcnow())
    finally:
        _nesting.reset(token)
    ports.metrics.count("OnEventRunsStarted")
    return run


def sync_rule(deployment: Deployment, *, ports: Any) -> None:
    """AWS (`ports.event_rules` set): create, update or delete the deployment's EventBridge rule
    to fit its `on_event`. Raises `ServiceUnavailable` (the deployment is saved: deploying again
    retries)."""
    rules = getattr(ports, "event_rules", None)
    if rules is None:
        return
    try:
        if deployment.on_event is None:
            rules.delete(deployment.id)
        else:
            rules.put(deployment)
    except SluiceError as exc:
        raise ServiceUnavailable(
            f"deployment {deployment.flow_name}/{deployment.name} was saved but its "
            f"EventBridge rule was not: {exc}; check the API role may manage rules "
            "<prefix>-on-event-* and deploy it again", details=exc.details) from None


def delete_rule(deployment_id: str, *, ports: Any) -> None:
    """AWS: delete the deployment's rule (nothing when it has none)."""
    rules = getattr(ports, "event_rules", None)
    if rules is not None:
        rules.delete(deployment_id)
