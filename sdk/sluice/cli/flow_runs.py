"""`sluice flow-run ls|inspect|logs|cancel|retry|suspend|resume|delete`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from rich.text import Text

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import (Col, console, defanged, duration, exact, exact_and_ago, listing, print_json,
                     short_id, state_text, styled_state)
from .refs import FLOW_RUN_REF_HELP, resolve_run
from .run_views import (STATE_TYPES, LogLines, parse_since, parse_states, run_label,
                        runs_table, soonest_runs, task_runs_table)
from .schedule_words import describe_parameters

app = typer.Typer(no_args_is_help=True, help="Inspect and control flow runs.")

#: A run created "now" by the control plane may carry a time a moment after this machine's
#: clock: such runs still count as due.
_DUE_GRACE = timedelta(seconds=1)


@app.command("ls")
def list_runs(
    upcoming: Annotated[bool, typer.Option(
        "--upcoming", help="Future runs instead (Scheduled unless --state says otherwise), "
        "soonest first.")] = False,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    deployment: Annotated[str | None, typer.Option(
        help="Only runs of this deployment: flow/name or id.")] = None,
    state: Annotated[list[str] | None, typer.Option(
        help=f"Only runs in these state types ({', '.join(STATE_TYPES)}); repeat it or "
        "separate with commas.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only runs scheduled at or after this: a duration back from now (30m, 2h, 1d) "
        "or an ISO time (no zone: UTC).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many runs.")] = 20,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """List flow runs that started or are due, newest first (--upcoming: future ones).

    Tables show short ids (an id's last 8 characters), which every command taking a run
    accepts; --json gives full ids."""
    states = parse_states(state)
    now = datetime.now(timezone.utc)
    after = parse_since(since, now) if since else None
    if after is not None and after > now and not upcoming:
        raise typer.BadParameter(f"{since!r} is in the future, after every run that started or "
                                 "is due; for future runs add --upcoming", param_hint="--since")
    filters = {"flow_name": flow, "deployment_id": deployment,
               "state_type": ",".join(states) or None}
    with client(profile, api_url) as api:
        if upcoming:
            if filters["state_type"] is None:  # future runs that are not Scheduled are rare
                filters["state_type"] = "SCHEDULED"
            runs, more = soonest_runs(api, filters, max(after or now, now), limit)
        else:
            page = api.list_flow_runs(**filters, scheduled_after=after,
                                      scheduled_before=now + _DUE_GRACE, limit=limit)
            runs, more = page.items, page.next_cursor is not None
    if json:
        print_json(runs)
        return
    if runs:
        console.print(runs_table(runs, upcoming=upcoming))
    console.print(_footer(runs, upcoming=upcoming, more=more, limit=limit), highlight=False)


def _footer(runs: list, *, upcoming: bool, more: bool, limit: int) -> str:
    """What the listing shows and how to see more."""
    if upcoming:
        shown = (f"the {len(runs)} soonest future runs" if more else
                 f"{len(runs) or 'no'} future run{'s' if len(runs) != 1 else ''}")
        hints = [f"more: --limit {min(limit * 2, 200)}"] if more else []
        hints.append("runs that started or are due: drop --upcoming")
    else:
        shown = (f"the {len(runs)} newest runs that started or are due" if more else
                 f"{len(runs) or 'no'} run{'s that' if len(runs) != 1 else ' that'} started "
                 f"or {'is' if len(runs) == 1 else 'are'} due")
        hints = [f"more: --limit {min(limit * 2, 200)}"] if more else []
        hints.append("future runs: --upcoming")
    return f"{shown}; {'; '.join(hints)}"


@app.command()
def inspect(
    flow_run: Annotated[str, typer.Argument(metavar="RUN", help=FLOW_RUN_REF_HELP)],
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Show a flow run: its times, states, parameters and task runs."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        history = api.flow_run_history(run.id)
        task_runs = api.all_task_runs(run.id)
        links = _links(api, run)
    if json:
        print_json({"flow_run": run.model_dump(mode="json"),
                    "history": [s.model_dump(mode="json") for s in history],
                    "task_runs": [t.model_dump(mode="json") for t in task_runs]})
        return
    console.print(Text(run_label(run), style="bold"))
    fields = [("id", f"{run.id} (short {short_id(run.id)})"),
              ("state", state_text(run.state).append(
                  f" — {run.state.message}" if run.state.message else "")),
              ("scheduled", exact_and_ago(run.scheduled_at)),
              ("started", exact_and_ago(run.start_time)),
              ("ended", exact_and_ago(run.end_time)),
              ("duration", duration(run.duration_seconds)),
              ("attempts", f"{run.run_count} (retries allowed: {run.retries})"),
              *links,
              ("parameters", describe_parameters(run.parameters)),
              ("tags", ", ".join(run.tags) or "-")]
    for label, value in fields:
        console.print(Text(f"{label:>11}: ").append(
            value if isinstance(value, Text) else Text(defanged(str(value)))))
    rows = []
    for s in history:
        after = (s.details or {}).get("failed_state")
        rows.append([exact(s.timestamp, zone=False),
                     state_text(s).append(f" (after {after})" if after else "", style="dim"),
                     (s.message or "")[:300]])
    zone = datetime.now().astimezone().tzname()
    # The message wraps between words; states stay whole ("AwaitingRetry (after Failed)").
    console.print(listing(f"history ({zone} times)",
                          [Col("time"), Col("state"), Col("message", "text")], rows))
    counts: dict[str, int] = {}
    for t in task_runs:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"
    if not task_runs:
        console.print("task runs: none", highlight=False)
        return
    console.print(task_runs_table(task_runs[:50], title=f"task runs: {len(task_runs)} "
                                                        f"({summary})"))
    if len(task_runs) > 50:
        console.print(f"… and {len(task_runs) - 50} more: `sluice task-run ls "
                      f"{short_id(run.id)}` (--json for all)", highlight=False, markup=False)


def _links(api, run) -> list[tuple[str, str]]:  # noqa: ANN001
    """Where a run comes from and runs: its deployment by name, pool, worker, parent run."""
    from ..exceptions import NotFound

    links = []
    if run.deployment_id:
        try:
            d = api.get_deployment(run.deployment_id)
            links.append(("deployment", f"{d.flow_name}/{d.name}"))
        except NotFound:
            links.append(("deployment", f"{run.deployment_id} (deleted)"))
    links.append(("pool", f"{run.pool or run.worker_pool or '-'}, worker {run.worker or '-'}"))
    if run.parent_flow_run_id:
        try:
            parent = run_label(api.get_flow_run(run.parent_flow_run_id))
        except NotFound:
            parent = "deleted"
        task = (f", from its task run {short_id(run.parent_task_run_id)}"
                if run.parent_task_run_id else "")
        links.append(("subflow of", f"{short_id(run.parent_flow_run_id)} ({parent}){task}"))
    return links


@app.command()
def logs(
    flow_run: Annotated[str, typer.Argument(metavar="RUN", help=FLOW_RUN_REF_HELP)],
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Print a flow run's log lines in order; a task run's lines are marked with its name
    ("[extract-3]", "[extract-3 #2]" when it ran twice), the flow's own lines of its N-th
    attempt with "[#N]" when it had several."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        lines = None if json else LogLines(api, run.id)
        cursor = None
        while True:
            page = api.read_logs(run.id, cursor=cursor, limit=200)
            _print_log_page(page.items, lines)
            cursor = page.next_cursor or cursor
            if page.items:
                continue
            if not follow or api.get_flow_run(run.id).state.is_terminal:
                if follow:  # one last read: lines may land just before the final state
                    _print_log_page(api.read_logs(run.id, cursor=cursor, limit=200).items, lines)
                return
            time.sleep(0.5)


def _print_log_page(items: list, lines: LogLines | None) -> None:
    """Print log lines (JSON when `lines` is None); names of task runs created since the last
    page are read again first."""
    if lines is not None and not lines.knows(items):
        lines.refresh()
    for line in items:
        if lines is None:
            print(line.model_dump_json())
        else:
            console.print(lines.format(line), highlight=False, markup=False)


RunRef = Annotated[str, typer.Argument(metavar="RUN", help=FLOW_RUN_REF_HELP)]


@app.command()
def cancel(flow_run: RunRef,
           message: Annotated[str | None, typer.Option(
               "--message", "-m", help="Why; shown in the run's Cancelled state.")] = None,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Cancel a run: at once if it has not started, else its worker stops it."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        answer = api.cancel_flow_run(run.id, message)
    _print_answer("cancel", run, answer)


@app.command()
def retry(flow_run: RunRef,
          watch: Annotated[bool, typer.Option("--watch", "-w", help="Stream states and logs "
                                              "until the new attempt ends; the exit code says "
                                              "how it ended.")] = False,
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Run a Failed or Crashed run again as a new attempt (same id, attempt + 1)."""
    from .watching import watch_run

    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        answer = api.retry_flow_run(run.id)
        _print_answer("retry", run, answer)
        if not watch:
            return
        final = watch_run(api, run.id)
    raise typer.Exit(0 if final.state.is_completed() else 1)


@app.command()
def suspend(flow_run: RunRef,
            message: Annotated[str | None, typer.Option(
                "--message", "-m", help="Why; shown in the run's Suspended state.")] = None,
            profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Suspend a run until `sluice flow-run resume`: a waiting run is held, a running one is
    stopped by its worker (the resumed attempt runs the flow from the start)."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        answer = api.suspend_flow_run(run.id, message)
    _print_answer("suspend", run, answer)
    if answer.reason:  # "already suspended"
        console.print(f"({answer.reason})", highlight=False, markup=False)
    console.print(f"resume it with: sluice flow-run resume {short_id(run.id)}", highlight=False,
                  markup=False)


@app.command()
def resume(flow_run: RunRef,
           message: Annotated[str | None, typer.Option(
               "--message", "-m", help="Why; shown in the run's Scheduled state.")] = None,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Resume a Suspended run: it is queued now and a worker runs it again from the start."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        answer = api.resume_flow_run(run.id, message)
    _print_answer("resume", run, answer)


@app.command()
def delete(flow_run: RunRef,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Delete a finished run (Completed, Failed, Crashed or Cancelled) with its state history,
    task runs and logs. A run still waiting or running is refused: cancel it first."""
    from rich.markup import escape

    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        label = f"{short_id(run.id)} ({run.flow_name}/{run.name or '-'}, {run.state.name})"
        if not yes:
            typer.confirm(f"delete flow run {label}?", abort=True)
        api.delete_flow_run(run.id)
    console.print(f"deleted flow run {escape(label)}", highlight=False)


def _print_answer(action: str, run, answer) -> None:  # noqa: ANN001
    from rich.markup import escape

    label = f"{short_id(run.id)} ({escape(run.name or run.flow_name)})"
    if answer.status.value == "ACCEPT":
        console.print(f"{action}: run {label} is now {styled_state(answer.state)}",
                      highlight=False)
        return
    from ..exceptions import Conflict

    raise Conflict(f"{action} of run {short_id(run.id)} refused: "
                   f"{answer.reason or answer.state.name}")
