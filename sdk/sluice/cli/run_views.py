"""How flow runs, task runs and their log lines look in the CLI: the tables of `flow-run ls`,
`flow-run inspect` and `task-run ls`, the filters they take, and log lines that name task runs
by name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import typer
from rich.table import Table

from .output import Col, ago, duration, exact, first_words, listing, short_id, state_text

#: The state types `--state` takes (the API filters by type).
STATE_TYPES = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED",
               "CANCELLED", "CRASHED"]
#: States whose message says why the run waits ("Late: no worker has polled pool x").
_WAITING_TYPES = {"SCHEDULED", "PENDING", "PAUSED"}


def parse_states(values: Iterable[str] | None, *, names_too: bool = False) -> list[str]:
    """`--state` values (repeatable, each may be comma separated) as upper-case state types;
    with `names_too` state names ("cached", "late") pass as well (they are matched by the
    caller). Refuses an unknown one naming the accepted ones."""
    wanted = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    from ..models.states import NAMED_STATES

    known_names = {name.upper() for name in NAMED_STATES}
    for state in wanted:
        if state.upper() in STATE_TYPES or (names_too and state.upper() in known_names):
            continue
        raise typer.BadParameter(f"{state!r} is not a state type; use one or more of "
                                 f"{', '.join(STATE_TYPES)} (repeat --state or separate with "
                                 "commas)", param_hint="--state")
    return [state.upper() for state in wanted]


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now ("30m", "2h", "1d", "1h30m") or an ISO 8601 time
    (no zone: UTC)."""
    from ..exceptions import ConfigurationError
    from .durations import parse_duration

    try:
        return now - timedelta(seconds=parse_duration(text, "--since"))
    except ConfigurationError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration nor a time: give e.g. 30m, "
                                 "2h, 1d or 2026-12-01T08:00", param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


#: Most runs read from one time window while looking for the soonest future runs.
WINDOW_CAP = 2000
_FIRST_WINDOW = timedelta(hours=1)
_LONGEST_WINDOW = timedelta(days=400)


def soonest_runs(api: Any, filters: dict[str, Any], after: datetime, limit: int
                 ) -> tuple[list[Any], bool]:
    """The `limit` runs scheduled soonest at or after `after`, soonest first, and whether there
    are more. The API lists newest first, so this reads a time window from `after` whole (at
    most WINDOW_CAP runs) and keeps its end: a window holding fewer than `limit` runs grows, one
    holding more than the cap shrinks (bisecting between the two)."""
    window, ceiling = _FIRST_WINDOW, None
    while True:
        found: list[Any] = []
        for run in api.iter_flow_runs(**filters, scheduled_after=after,
                                      scheduled_before=after + window, limit=200):
            found.append(run)
            if len(found) > WINDOW_CAP:
                break
        if len(found) > WINDOW_CAP and window > timedelta(seconds=1):
            ceiling, window = window, window / 8
            continue
        found.reverse()
        if len(found) > limit:
            return found[:limit], True
        beyond = api.list_flow_runs(**filters, scheduled_after=after + window, limit=1).items
        if len(found) == limit or not beyond or window >= _LONGEST_WINDOW:
            return found, bool(beyond)
        if ceiling is None:
            window *= 8
        elif ceiling - window < timedelta(seconds=1):
            return found, True
        else:
            window = (window + ceiling) / 2


def run_label(run: Any) -> str:
    """"flow/run-name" of a flow run."""
    return f"{run.flow_name}/{run.name}" if run.name else run.flow_name


def run_state(run: Any) -> Any:
    """A run's state as a table cell: its name, and the first words of why it waits."""
    state = run.state
    waiting = state is not None and state.type.value in _WAITING_TYPES and state.message
    return state_text(state, first_words(state.message, 5) if waiting else None)


def _state_least(items: Sequence[Any]) -> int:
    # A squeezed state column still shows every state's whole name.
    return max((len(item.state.name) for item in items if item.state is not None), default=5)


def runs_table(runs: Sequence[Any], *, upcoming: bool = False, title: str | None = None
               ) -> Table:
    """The table of `flow-run ls` (and the recent runs of `deployment inspect`): short ids,
    relative times; at 80 columns the scheduled time, attempts and duration give way."""
    now = datetime.now(timezone.utc)
    if upcoming:
        columns = [Col("id"), Col("flow/name", "name", least=20),
                   Col("state", "name", least=_state_least(runs)), Col("scheduled"),
                   Col("at", drop=1)]
        rows = [[short_id(r.id), run_label(r), run_state(r), ago(r.scheduled_at, now),
                 exact(r.scheduled_at)] for r in runs]
        return listing(title, columns, rows)
    columns = [Col("id"), Col("flow/name", "name", least=20),
               Col("state", "name", least=_state_least(runs)), Col("started"),
               Col("duration", drop=1), Col("tries", justify="right", drop=2),
               Col("scheduled", drop=3)]
    rows = [[short_id(r.id), run_label(r), run_state(r), ago(r.start_time, now),
             duration(r.duration_seconds), str(r.run_count), ago(r.scheduled_at, now)]
            for r in runs]
    return listing(title, columns, rows)


def task_run_duration(task_run: Any) -> float | None:
    if task_run.start_time and task_run.end_time:
        return (task_run.end_time - task_run.start_time).total_seconds()
    return None


def task_runs_table(task_runs: Sequence[Any], title: str | None = None) -> Table:
    """The task runs of a flow run: short id, name, state, attempts, start and duration."""
    now = datetime.now(timezone.utc)
    columns = [Col("id"), Col("task run", "name", least=16),
               Col("state", "name", least=_state_least(task_runs)),
               Col("tries", justify="right", drop=2), Col("started", drop=3),
               Col("duration", drop=1)]
    rows = [[short_id(t.id), t.name, state_text(t.state), str(t.run_count),
             ago(t.start_time, now), duration(task_run_duration(t))] for t in task_runs]
    return listing(title, columns, rows)


def matches_states(item: Any, states: Sequence[str]) -> bool:
    """Whether a run's state has one of the types or names in `states` (upper case)."""
    if not states:
        return True
    return item.state is not None and (item.state.type.value in states
                                       or item.state.name.upper() in states)


#: A flow process logs its first line ("Beginning flow run ...") a moment before it reports
#: Running; an attempt's lines are counted from this long before its Running state.
_FIRST_LINE_LEAD = timedelta(seconds=0.25)


def attempt_starts(history: Sequence[Any]) -> list[datetime]:
    """From when each attempt of a flow run logs. An attempt is claimed by a step out of a
    Scheduled-type state into Pending or Running (where the control plane counts `run_count`),
    but the previous attempt's process may still log its last lines after that claim: an
    attempt counts from just before it reports Running (not before its claim), or from its
    claim when it never ran."""
    starts: list[datetime] = []
    claimed: datetime | None = None
    before = None
    for state in history:
        kind = state.type.value
        if kind in ("PENDING", "RUNNING") and before in (None, "SCHEDULED"):
            if claimed is not None:  # the previous claim never reached Running
                starts.append(claimed)
            claimed = state.timestamp
        if kind == "RUNNING" and claimed is not None:
            starts.append(max(claimed, state.timestamp - _FIRST_LINE_LEAD))
            claimed = None
        before = kind
    if claimed is not None:
        starts.append(claimed)
    return starts


class LogLines:
    """Formats a flow run's log lines: time to the millisecond, level, and for a task run's
    line its name ("[extract-3]", "[extract-3 #2]" for a task run that ran twice, as `--watch`
    shows it); the flow's own lines of its N-th attempt (N > 1) are marked "[#N]". Log records
    carry no attempt: the flow's is read from its state history (`attempt_starts`), a task
    run's is its run count."""

    def __init__(self, api: Any, flow_run_id: str) -> None:
        self.api, self.flow_run_id = api, flow_run_id
        self.task_names: dict[str, str] = {}
        self.attempt_starts: list[datetime] = []
        self.refresh()

    def refresh(self) -> None:
        """Read task run names and attempt starts again (for lines of a run still going)."""
        self.task_names = {t.id: t.name + (f" #{t.run_count}" if t.run_count > 1 else "")
                           for t in self.api.all_task_runs(self.flow_run_id)}
        self.attempt_starts = attempt_starts(self.api.flow_run_history(self.flow_run_id))

    def knows(self, lines: Iterable[Any]) -> bool:
        """Whether every task run of `lines` has a known name."""
        return all(line.task_run_id is None or line.task_run_id in self.task_names
                   for line in lines)

    def attempt(self, at: datetime) -> int:
        return sum(1 for start in self.attempt_starts if start <= at)

    def where(self, line: Any) -> str:
        if line.task_run_id:  # the task run's name, with its attempts as `--watch` shows them
            return f" [{self.task_names.get(line.task_run_id, short_id(line.task_run_id))}]"
        attempt = self.attempt(line.timestamp)
        return f" [#{attempt}]" if attempt > 1 else ""

    def format(self, line: Any) -> str:
        stamp = f"{line.timestamp.astimezone():%H:%M:%S.%f}"[:-3]
        return f"{stamp} {line.level.value:<7}{self.where(line)} {line.message}"
