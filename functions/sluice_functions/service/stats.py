"""Use cases of the console's overview pages: runs counted per time bucket and state
(`GET /stats/flow-runs`), and every deployment with its schedules in words, next and recent runs
(`GET /stats/deployments`). Counting happens in the store (`RunStore.count_flow_runs_by_bucket`),
so a dashboard over 100,000 runs ships a few hundred numbers, not runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from sluice.exceptions import ValidationError
from sluice.models import MAX_PAGE_LIMIT, Deployment, FlowRun, StateType
from sluice.schedule_words import describe_schedule

from ..ports import FlowRunFilter, RunStore
from ..scheduling import next_times
from .deployments import get_deployment

#: Bucket sizes a chart may ask for: 5 min, 15 min, 1 h, 6 h, 1 day.
BUCKET_SECONDS_CHOICES = (300, 900, 3600, 21600, 86400)
DEFAULT_BUCKET_SECONDS = 3600
#: The longest window counted at once, and the most buckets one answer holds.
MAX_WINDOW = timedelta(days=31)
MAX_BUCKETS = 2000
#: The window when the request names none: the last 24 hours.
DEFAULT_WINDOW = timedelta(hours=24)
#: What `GET /stats/deployments` shows of each deployment.
NEXT_RUNS = 5
RECENT_RUNS = 10
#: Deployments listed at most (a console page, not an export; the CLI lists them all).
MAX_DEPLOYMENTS = 500


class FlowRunBucket(BaseModel):
    """Runs scheduled in [start, start + bucket_seconds), by current state type."""

    start: datetime
    counts: dict[StateType, int] = Field(default_factory=dict)


class FlowRunStats(BaseModel):
    """Answer of `GET /stats/flow-runs`."""

    since: datetime
    until: datetime
    bucket_seconds: int
    #: Every bucket of the window, oldest first, empty ones included (a continuous axis).
    buckets: list[FlowRunBucket]
    totals: dict[StateType, int]
    #: Runs of the window currently named Late (Scheduled past their time).
    late: int
    #: The store stopped reading at its bound: the counts cover part of the window only.
    truncated: bool = False


class ScheduleSummary(BaseModel):
    id: str | None = None
    #: "every day at 02:00 Europe/Berlin", "every 20 seconds" (the CLI's words).
    description: str
    active: bool


class RecentRun(BaseModel):
    id: str
    name: str | None = None
    state_type: StateType
    state_name: str
    scheduled_at: datetime | None = None


class DeploymentStats(BaseModel):
    """One deployment as the console's deployments page shows it."""

    id: str
    flow_name: str
    name: str
    pool: str
    paused: bool
    schedules: list[ScheduleSummary]
    #: The next times its active schedules fire (none while paused), soonest first.
    next_runs: list[datetime]
    #: Its newest runs that are due or started (newest first): the strip of coloured squares.
    recent: list[RecentRun]
    parameter_schema: dict[str, Any] = Field(default_factory=dict)


def flow_run_stats(
    *, store: RunStore, now: datetime, since: datetime | None = None,
    until: datetime | None = None, bucket_seconds: int = DEFAULT_BUCKET_SECONDS,
    flow_name: str | None = None, deployment_id: str | None = None, pool: str | None = None,
) -> FlowRunStats:
    """Runs per `scheduled_at` bucket and current state type over [since, until) (default: the
    last 24 hours). Bucket edges fall on multiples of `bucket_seconds` since the epoch (whole
    hours, UTC midnights): `since` is rounded down and `until` up to an edge, and the answer
    names the window it counted. Raises `ValidationError` naming the field for a bucket size
    not offered, a window over 31 days or of more than 2,000 buckets, or one that ends before
    it starts; `NotFound` for an unknown "flow/name" deployment."""
    until = until or now
    since = since or until - DEFAULT_WINDOW
    if bucket_seconds not in BUCKET_SECONDS_CHOICES:
        _refuse("bucket_seconds", f"must be one of {', '.join(map(str, BUCKET_SECONDS_CHOICES))}")
    if since >= until:
        _refuse("since", "must be before until")
    if until - since > MAX_WINDOW:
        _refuse("since", f"the window is at most {MAX_WINDOW.days} days; move since or until")
    start, end = _edge(since, bucket_seconds), _edge(until, bucket_seconds, up=True)
    count = int((end - start).total_seconds()) // bucket_seconds
    if count > MAX_BUCKETS:
        _refuse("bucket_seconds", f"the window holds {count} buckets of this size, at most "
                                  f"{MAX_BUCKETS}: choose a larger bucket_seconds")
    if deployment_id is not None and "/" in deployment_id:
        deployment_id = get_deployment(deployment_id, store=store).id
    flt = FlowRunFilter(flow_name=flow_name, deployment_id=deployment_id, pool=pool,
                        scheduled_after=start, scheduled_before=end)
    counted = store.count_flow_runs_by_bucket(flt, bucket_seconds=bucket_seconds, now=now)
    buckets = [FlowRunBucket(start=start + timedelta(seconds=i * bucket_seconds))
               for i in range(count)]
    totals: dict[StateType, int] = {}
    for (index, state_type), runs in sorted(counted.counts.items(),
                                            key=lambda pair: (pair[0][0], pair[0][1].value)):
        if 0 <= index < count:
            buckets[index].counts[state_type] = runs
            totals[state_type] = totals.get(state_type, 0) + runs
    return FlowRunStats(since=start, until=end, bucket_seconds=bucket_seconds, buckets=buckets,
                        totals=totals, late=counted.late, truncated=counted.truncated)


def deployment_stats(*, store: RunStore, now: datetime) -> list[DeploymentStats]:
    """Every deployment (at most `MAX_DEPLOYMENTS`, by flow then name) with its schedules in
    words, its next `NEXT_RUNS` times and its `RECENT_RUNS` newest runs that are due."""
    return [_deployment_stats(d, store=store, now=now) for d in _deployments(store)]


def _deployments(store: RunStore) -> list[Deployment]:
    found: list[Deployment] = []
    cursor = None
    while len(found) < MAX_DEPLOYMENTS:
        page = store.list_deployments(limit=min(MAX_PAGE_LIMIT, MAX_DEPLOYMENTS - len(found)),
                                      cursor=cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


def _deployment_stats(deployment: Deployment, *, store: RunStore, now: datetime
                      ) -> DeploymentStats:
    # Runs due or started: the future Scheduled ones are what `next_runs` shows.
    recent = store.list_flow_runs(
        FlowRunFilter(deployment_id=deployment.id, scheduled_before=now + timedelta(seconds=1)),
        limit=RECENT_RUNS).items
    return DeploymentStats(
        id=deployment.id, flow_name=deployment.flow_name, name=deployment.name,
        pool=deployment.pool, paused=deployment.paused,
        schedules=[ScheduleSummary(id=s.id, active=s.active, description=describe_schedule(
            s, parameters=False, status=False, cron_text=False)) for s in deployment.schedules],
        next_runs=_next_runs(deployment, now),
        recent=[_recent(run) for run in recent],
        parameter_schema=deployment.parameter_schema,
    )


def _next_runs(deployment: Deployment, now: datetime) -> list[datetime]:
    if deployment.paused:
        return []
    times: list[datetime] = []
    for schedule in deployment.schedules:
        if not schedule.active:
            continue
        try:
            times += next_times(schedule, now, NEXT_RUNS)
        except ValidationError:  # a schedule stored before a rule existed: shown, never fires
            continue
    return sorted(times)[:NEXT_RUNS]


def _recent(run: FlowRun) -> RecentRun:
    return RecentRun(id=run.id, name=run.name, state_type=run.state.type,
                     state_name=run.state.name or run.state.type.value.title(),
                     scheduled_at=run.scheduled_at)


def _edge(moment: datetime, bucket_seconds: int, *, up: bool = False) -> datetime:
    """`moment` rounded to a multiple of `bucket_seconds` since the epoch (down, or up)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    seconds = (moment.astimezone(UTC) - epoch).total_seconds()
    whole, rest = divmod(seconds, bucket_seconds)
    return epoch + timedelta(seconds=(whole + (1 if up and rest else 0)) * bucket_seconds)


def _refuse(field: str, msg: str) -> None:
    raise ValidationError(f"query.{field}: {msg}",
                          details=[{"loc": ["query", field], "msg": msg}])
