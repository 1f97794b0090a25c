"""`sluice task-run ls|inspect`: the task runs of one flow run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, defanged, duration, exact_and_ago, print_json, short_id, state_text
from .refs import FLOW_RUN_REF_HELP, TASK_RUN_REF_HELP, resolve_run, resolve_task_run
from .run_views import (STATE_TYPES, LogLines, matches_states, parse_states, run_label,
                        task_run_duration, task_runs_table)

app = typer.Typer(no_args_is_help=True, help="Task runs of a flow run: list them (ls), show "
                  "one with its log lines (inspect).")

FlowRunArg = Annotated[str, typer.Argument(metavar="FLOW_RUN", help=FLOW_RUN_REF_HELP)]


@app.command("ls")
def list_task_runs(
    flow_run: FlowRunArg,
    state: Annotated[list[str] | None, typer.Option(
        help=f"Only task runs in these states: a type ({', '.join(STATE_TYPES)}) or a name "
        "(Cached, Retrying, ...); repeat it or separate with commas.")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """List a flow run's task runs in the order they were created."""
    states = parse_states(state, names_too=True)
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        task_runs = [t for t in api.all_task_runs(run.id) if matches_states(t, states)]
    if json:
        print_json(task_runs)
        return
    title = f"task runs of {short_id(run.id)} ({run_label(run)})"
    if task_runs:
        console.print(task_runs_table(task_runs, title=title))
    filtered = f" in state {', '.join(states)}" if states else ""
    console.print(Text(f"{len(task_runs) or 'no'} task run{'s' if len(task_runs) != 1 else ''}"
                       f"{filtered}; one in detail: sluice task-run inspect {short_id(run.id)} "
                       "NAME"))


@app.command()
def inspect(
    flow_run: FlowRunArg,
    task_run: Annotated[str, typer.Argument(metavar="TASK_RUN", help=TASK_RUN_REF_HELP)],
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Show a task run: its state, attempts, times, cache and log lines."""
    with client(profile, api_url) as api:
        run = resolve_run(api, flow_run)
        task_runs = api.all_task_runs(run.id)
        chosen = resolve_task_run(task_runs, task_run, short_id(run.id))
        lines = [line for line in _all_logs(api, run.id) if line.task_run_id == chosen.id]
        formatter = None if json else LogLines(api, run.id)
    if json:
        print_json({"task_run": chosen.model_dump(mode="json"),
                    "logs": [line.model_dump(mode="json") for line in lines]})
        return
    names = {t.id: t.name for t in task_runs}
    console.print(Text(f"{chosen.name}", style="bold").append(
        f" of flow run {short_id(run.id)} ({run_label(run)})", style=""))
    cached = chosen.state is not None and chosen.state.name == "Cached"
    fields = [("id", f"{chosen.id} (short {short_id(chosen.id)})"),
              ("task", chosen.task_name),
              ("state", state_text(chosen.state).append(
                  f" — {chosen.state.message}" if chosen.state.message else "")),
              ("attempts", str(chosen.run_count)),
              ("started", exact_and_ago(chosen.start_time)),
              ("ended", exact_and_ago(chosen.end_time)),
              ("duration", duration(task_run_duration(chosen))),
              ("cache", (f"key {chosen.cache_key}, " if chosen.cache_key else "no key, ")
               + ("hit (result reused)" if cached else "not used")),
              ("result", chosen.result_key or "-"),
              ("upstream", ", ".join(names.get(u, short_id(u))
                                     for u in chosen.upstream_task_run_ids) or "-"),
              ("tags", ", ".join(chosen.tags) or "-")]
    if chosen.parent_task_run_id:
        fields.append(("inside", names.get(chosen.parent_task_run_id,
                                           short_id(chosen.parent_task_run_id))))
    for label, value in fields:
        console.print(Text(f"{label:>9}: ").append(
            value if isinstance(value, Text) else Text(defanged(value))))
    console.print(Text(f"log lines: {len(lines) or 'none'}", style="bold"))
    for line in lines:
        assert formatter is not None
        console.print(formatter.format(line), highlight=False, markup=False)


def _all_logs(api, flow_run_id: str) -> list:  # noqa: ANN001
    """Every log line of a flow run (the API lists them per flow run, in order)."""
    lines, cursor = [], None
    while True:
        page = api.read_logs(flow_run_id, cursor=cursor, limit=200)
        lines.extend(page.items)
        if not page.items or page.next_cursor is None:
            return lines
        cursor = page.next_cursor
