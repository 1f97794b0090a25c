"""`sluice flow ls`: the flows the control plane knows, from deployments and recent runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import Col, ago, console, listing, print_json, short_id, state_text

app = typer.Typer(no_args_is_help=True, help="Flows: the names deployments and runs share.")

#: How many of the newest runs `flow ls` reads to find flows without a deployment.
RECENT_RUNS = 200


@app.command("ls")
def list_flows(json: JsonOption = False, profile: ProfileOption = None,
               api_url: ApiUrlOption = None) -> None:
    """List flows: those with deployments and those of the last 200 runs that started or
    are due, with their deployment count and last run."""
    now = datetime.now(timezone.utc)
    with client(profile, api_url) as api:
        deployments = list(_all_deployments(api))
        recent = api.list_flow_runs(scheduled_before=now + timedelta(seconds=1),
                                    limit=RECENT_RUNS).items
        last: dict[str, Any] = {}
        for run in recent:  # newest first: the first seen is the last run
            last.setdefault(run.flow_name, run)
        counts: dict[str, int] = {}
        for d in deployments:
            counts[d.flow_name] = counts.get(d.flow_name, 0) + 1
            if d.flow_name not in last:  # older than the recent runs: ask for that flow
                older = api.list_flow_runs(flow_name=d.flow_name,
                                           scheduled_before=now + timedelta(seconds=1),
                                           limit=1).items
                last[d.flow_name] = older[0] if older else None
    names = sorted(set(counts) | set(last))
    if json:
        print_json([{"flow_name": name, "deployments": counts.get(name, 0),
                     "last_run": None if last.get(name) is None
                     else last[name].model_dump(mode="json")} for name in names])
        return
    if not names:
        console.print("no flows yet: deploy one with `sluice deploy PATH:FLOW --name NAME`, "
                      "or run a flow function", highlight=False)
        return
    rows = []
    for name in names:
        run = last.get(name)
        rows.append([name, str(counts.get(name, 0)),
                     short_id(run.id) if run else "-",
                     state_text(run.state) if run else "-",
                     ago(run.start_time or run.scheduled_at, now) if run else "-"])
    console.print(listing(None, [Col("flow", "name", least=20),
                                 Col("deployments", justify="right"),
                                 Col("last run"), Col("state"), Col("when", drop=1)], rows))
    console.print(f"{len(names)} flow{'s' if len(names) != 1 else ''}; their runs: "
                  "sluice flow-run ls --flow NAME", highlight=False, markup=False)


def _all_deployments(api):  # noqa: ANN001, ANN202
    cursor = None
    while True:
        page = api.list_deployments(cursor=cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
