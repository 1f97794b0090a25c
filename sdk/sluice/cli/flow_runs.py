"""`sluice flow-run ls|inspect|logs|cancel|retry`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, duration, print_json, styled_state, table, when

app = typer.Typer(no_args_is_help=True, help="Inspect and control flow runs.")

_STATES = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED",
           "CANCELLED", "CRASHED"]


@app.command("ls")
def list_runs(
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Only runs of this deployment id.")] = None,
    state: Annotated[str | None, typer.Option(help=f"Only runs in this state type: "
                                              f"{', '.join(_STATES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many runs.")] = 20,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """List flow runs, newest first."""
    if state is not None and state.upper() not in _STATES:
        raise typer.BadParameter(f"{state!r} is not a state type; use one of {', '.join(_STATES)}",
                                 param_hint="--state")
    with client(profile, api_url) as api:
        page = api.list_flow_runs(flow_name=flow, deployment_id=deployment,
                                  state_type=state.upper() if state else None, limit=limit)
    if json:
        print_json(page.items)
        return
    t = table(None, "id", "flow", "name", "state", "scheduled", "started", "duration", "runs")
    for run in page.items:
        t.add_row(run.id, run.flow_name, run.name or "-", styled_state(run.state),
                  when(run.scheduled_at), when(run.start_time), duration(run.duration_seconds),
                  str(run.run_count))
    console.print(t)
    if not page.items:
        console.print("no flow runs yet")


@app.command()
def inspect(
    flow_run_id: Annotated[str, typer.Argument(help="The flow run's id.")],
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Show a flow run: its states, parameters and task runs."""
    with client(profile, api_url) as api:
        run = api.get_flow_run(flow_run_id)
        history = api.flow_run_history(flow_run_id)
        task_runs = api.all_task_runs(flow_run_id)
    if json:
        print_json({"flow_run": run.model_dump(mode="json"),
                    "history": [s.model_dump(mode="json") for s in history],
                    "task_runs": [t.model_dump(mode="json") for t in task_runs]})
        return
    console.print(f"[bold]{run.flow_name}[/bold] / {run.name}  ({run.id})")
    console.print(f"state: {styled_state(run.state)}"
                  + (f" — {run.state.message}" if run.state.message else ""))
    console.print(f"runs: {run.run_count}  started: {when(run.start_time)}  "
                  f"duration: {duration(run.duration_seconds)}  "
                  f"deployment: {run.deployment_id or '-'}  worker: {run.worker or '-'}")
    if run.parameters:
        console.print(f"parameters: {run.parameters}")
    states = table("history", "time", "state", "message")
    for s in history:
        after = (s.details or {}).get("failed_state")
        label = f"{styled_state(s)} (after {after})" if after else styled_state(s)
        states.add_row(when(s.timestamp), label, (s.message or "")[:200])
    console.print(states)
    counts: dict[str, int] = {}
    for t in task_runs:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"
    console.print(f"task runs: {len(task_runs)} ({summary})")
    shown = table(None, "task run", "state", "runs", "duration")
    for t in task_runs[:50]:
        d = (t.end_time - t.start_time).total_seconds() if t.start_time and t.end_time else None
        shown.add_row(t.name, styled_state(t.state), str(t.run_count), duration(d))
    if task_runs:
        console.print(shown)
        if len(task_runs) > 50:
            console.print(f"… and {len(task_runs) - 50} more (use --json for all)")


@app.command()
def logs(
    flow_run_id: Annotated[str, typer.Argument(help="The flow run's id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new lines until the run ends.")] = False,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Print a flow run's log lines in order."""
    with client(profile, api_url) as api:
        cursor = None
        while True:
            page = api.read_logs(flow_run_id, cursor=cursor, limit=200)
            for line in page.items:
                if json:
                    print(line.model_dump_json())
                else:
                    where = f" [{line.task_run_id[-6:]}]" if line.task_run_id else ""
                    console.print(f"{line.timestamp.astimezone():%H:%M:%S.%f}"[:-3]
                                  + f" {line.level.value:<7}{where} {line.message}",
                                  highlight=False, markup=False)
            cursor = page.next_cursor or cursor
            if page.items:
                continue
            if not follow or api.get_flow_run(flow_run_id).state.is_terminal:
                if follow:  # one last read: lines may land just before the final state
                    tail = api.read_logs(flow_run_id, cursor=cursor, limit=200)
                    for line in tail.items:
                        console.print(f"{line.level.value:<7} {line.message}", markup=False)
                return
            time.sleep(0.5)


@app.command()
def cancel(flow_run_id: Annotated[str, typer.Argument(help="The flow run's id.")],
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Cancel a run: at once if it has not started, else its worker stops it."""
    with client(profile, api_url) as api:
        answer = api.cancel_flow_run(flow_run_id)
    _print_answer("cancel", answer)


@app.command()
def retry(flow_run_id: Annotated[str, typer.Argument(help="The flow run's id.")],
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Run a Failed or Crashed run again as a new attempt."""
    with client(profile, api_url) as api:
        answer = api.retry_flow_run(flow_run_id)
    _print_answer("retry", answer)


def _print_answer(action: str, answer) -> None:  # noqa: ANN001
    if answer.status.value == "ACCEPT":
        console.print(f"{action}: the run is now {styled_state(answer.state)}")
        return
    from ..exceptions import Conflict

    raise Conflict(f"{action} refused: {answer.reason or answer.state.name}")
