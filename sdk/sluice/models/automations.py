"""Automations: a trigger (events that happened, or an expected event that did not) and the
actions to take when it fires. Pure models: matching an event is plain logic, no I/O.

Matching rules (`EventMatch`), all given criteria must hold:

* `names`: the event's name equals one of them; `*` matches any run of characters
  (`sluice.flow-run.*`, `*.Failed`). Empty means every name.
* `resource_ids`: the event's resource id is one of them. Empty means any resource.
* `related`: `kind:id` entries that must *all* be among the event's resource or related
  resources; the id part also matches a resource's name (`deployment:etl/nightly`,
  `tag:critical`, `pool:default`).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .ids import new_id
from .sluice_events import SluiceEvent
from .states import MAX_STATE_MESSAGE_CHARS

#: Actions of one automation.
MAX_ACTIONS = 10
#: Longest window a trigger may count over (the event store keeps 14 days by default).
MAX_WINDOW_SECONDS = 7 * 24 * 60 * 60
#: Most events a reactive threshold may ask for (each evaluation reads them back).
MAX_THRESHOLD = 1000
#: The default message of a notification (a jinja2 template; context: event, automation, now).
DEFAULT_NOTIFY_SUBJECT = "Sluice: {{ automation.name }}"
DEFAULT_NOTIFY_BODY = ("{{ automation.name }}: {{ event.name }} on {{ event.resource.kind }} "
                       "{{ event.resource.name or event.resource.id }} at {{ event.occurred }}"
                       "{% if event.payload.get('message') %}: {{ event.payload.message }}{% endif %}")

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class EventMatch(BaseModel):
    """Which events a trigger looks at (see the module docstring for the rules)."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=list, max_length=20)
    resource_ids: list[str] = Field(default_factory=list, max_length=50)
    related: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("related")
    @classmethod
    def _kind_and_id(cls, value: list[str]) -> list[str]:
        for entry in value:
            kind, sep, ident = entry.partition(":")
            if not sep or not kind or not ident:
                raise ValueError(f"related entry {entry!r} must be 'kind:id', e.g. "
                                 "'deployment:etl/nightly' or 'tag:critical'")
        return value

    def name_prefixes(self) -> list[str] | None:
        """Literal prefixes of the name patterns (what an event store can filter on), or None
        when some pattern matches any name."""
        prefixes = [pattern.split("*", 1)[0] for pattern in self.names]
        if not prefixes or any(p == "" for p in prefixes):
            return None
        return sorted(set(prefixes))

    def matches(self, event: SluiceEvent) -> bool:
        """Whether `event` meets every criterion."""
        if self.names and not any(_name_pattern(p).match(event.name) for p in self.names):
            return False
        if self.resource_ids and event.resource.id not in self.resource_ids:
            return False
        resources = [event.resource, *event.related]
        for entry in self.related:
            kind, _, ident = entry.partition(":")
            if not any(r.kind == kind and ident in (r.id, r.name) for r in resources):
                return False
        return True


@lru_cache(maxsize=512)
def _name_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


class ReactiveTrigger(BaseModel):
    """Fires when `threshold` matching events occur within `within_seconds` (per resource with
    `group_by="resource"`). After firing, a group counts afresh from the next event."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["reactive"] = "reactive"
    match: EventMatch = Field(default_factory=EventMatch)
    threshold: int = Field(default=1, ge=1, le=MAX_THRESHOLD)
    within_seconds: int | None = Field(default=None, ge=1, le=MAX_WINDOW_SECONDS)
    group_by: Literal["resource"] | None = None

    @model_validator(mode="after")
    def _window_for_threshold(self) -> ReactiveTrigger:
        if self.threshold > 1 and self.within_seconds is None:
            raise ValueError("a threshold above 1 needs within_seconds (the window to count "
                             "events in)")
        return self


class ProactiveTrigger(BaseModel):
    """Fires when an expected event is absent, evaluated by the monitor tick. Three forms:

    * `after` + `within_seconds`: each event matching `after` expects one matching `expect`
      within that many seconds (same resource with `group_by="resource"`).
    * `within_seconds` alone: fires when no `expect` event occurred in the last that many
      seconds (again every `within_seconds` while the silence lasts).
    * `daily_at` ("03:00") + `timezone`: the expected event must occur in the day before each
      deadline; fires once per missed deadline.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["proactive"] = "proactive"
    expect: EventMatch
    after: EventMatch | None = None
    within_seconds: int | None = Field(default=None, ge=1, le=MAX_WINDOW_SECONDS)
    daily_at: str | None = None
    timezone: str = "UTC"
    group_by: Literal["resource"] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ProactiveTrigger:
        if (self.within_seconds is None) == (self.daily_at is None):
            raise ValueError("a proactive trigger needs exactly one of within_seconds (a "
                             "window) or daily_at (a deadline such as '03:00')")
        if self.daily_at is not None:
            if not _TIME_OF_DAY.match(self.daily_at):
                raise ValueError(f"daily_at {self.daily_at!r} must be HH:MM (24 h), e.g. '03:00'")
            if self.after is not None:
                raise ValueError("'after' goes with within_seconds, not with daily_at")
        if self.group_by is not None and self.after is None:
            raise ValueError("group_by on a proactive trigger needs 'after' (the events whose "
                             "resource is the group)")
        _check_timezone(self.timezone)
        return self


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as "
                         "'Europe/Berlin' or 'UTC'") from None


Trigger = Annotated[Union[ReactiveTrigger, ProactiveTrigger], Field(discriminator="type")]


class RunDeploymentAction(BaseModel):
    """Start a run of a deployment ("flow/name" or id); string parameters are templates."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["run-deployment"] = "run-deployment"
    deployment: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class CancelRunAction(BaseModel):
    """Cancel a flow run; `run` is a template (default: the triggering event's resource)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["cancel-run"] = "cancel-run"
    run: str = "{{ event.resource.id }}"


class SuspendRunAction(BaseModel):
    """Suspend a flow run until it is resumed (a running attempt is stopped); `run` is a
    template (default: the triggering event's resource), so is `message` (default: names the
    automation). "suspend-flow-run" is accepted as the type too."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["suspend-run", "suspend-flow-run"] = "suspend-run"
    run: str = "{{ event.resource.id }}"
    message: str | None = Field(default=None, max_length=MAX_STATE_MESSAGE_CHARS)


class ResumeRunAction(BaseModel):
    """Resume a Suspended flow run (a new attempt is queued); `run` is a template (default: the
    triggering event's resource). "resume-flow-run" is accepted too."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["resume-run", "resume-flow-run"] = "resume-run"
    run: str = "{{ event.resource.id }}"


class PauseDeploymentAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pause-deployment"] = "pause-deployment"
    deployment: str = Field(min_length=1)


class ResumeDeploymentAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["resume-deployment"] = "resume-deployment"
    deployment: str = Field(min_length=1)


class PausePoolAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pause-pool"] = "pause-pool"
    pool: str = Field(min_length=1)


class ResumePoolAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["resume-pool"] = "resume-pool"
    pool: str = Field(min_length=1)


class NotifyAction(BaseModel):
    """Send a message: `webhook` (JSON POST, HMAC-signed with the secret `hmac_secret` names),
    `slack` (incoming webhook) or `sns` (Publish to `topic_arn`). URLs are never stored here:
    `url_secret` names the Sluice secret holding it (`sluice secret set NAME`)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["notify"] = "notify"
    via: Literal["webhook", "slack", "sns"]
    url_secret: str | None = None
    topic_arn: str | None = None
    hmac_secret: str | None = None
    subject: str = DEFAULT_NOTIFY_SUBJECT
    body: str = DEFAULT_NOTIFY_BODY

    @model_validator(mode="after")
    def _destination(self) -> NotifyAction:
        if self.via in ("webhook", "slack") and not self.url_secret:
            raise ValueError(f"notify via {self.via} needs url_secret: the name of a secret "
                             "holding the URL (`sluice secret set NAME`)")
        if self.via == "sns" and not (self.topic_arn or "").startswith("arn:"):
            raise ValueError("notify via sns needs topic_arn, e.g. "
                             "'arn:aws:sns:eu-central-1:123456789012:alerts'")
        if self.hmac_secret and self.via != "webhook":
            raise ValueError("hmac_secret signs webhook bodies only; remove it or use "
                             "via='webhook'")
        return self


Action = Annotated[
    Union[RunDeploymentAction, CancelRunAction, SuspendRunAction, ResumeRunAction,
          PauseDeploymentAction, ResumeDeploymentAction, PausePoolAction, ResumePoolAction,
          NotifyAction],
    Field(discriminator="type"),
]


class AutomationCreate(BaseModel):
    """Body of `POST /automations` (and the content of `sluice automation create --file`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool = True
    trigger: Trigger
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


class Automation(AutomationCreate):
    """A stored automation."""

    id: str = Field(default_factory=new_id)
    created: datetime
    updated: datetime
    #: Who manages it, set by the control plane: None for automations made with
    #: `sluice automation create` or the API; `deployment:<id>` for a deployment's `triggers`
    #: (replaced when it is redeployed, deleted with it).
    owner: str | None = Field(default=None, max_length=128)


class AutomationUpdate(BaseModel):
    """Body of `PATCH /automations/{id}`: pause (`enabled: false`) or resume."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
