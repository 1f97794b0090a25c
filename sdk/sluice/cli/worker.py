"""`sluice worker start|ls`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client

app = typer.Typer(no_args_is_help=True, help="Workers: run a pool's flow runs on this machine "
                  "(start), see which are online (ls).")


@app.command()
def start(
    pool: Annotated[str, typer.Option(help="The work pool to take runs from.")] = "default",
    limit: Annotated[int, typer.Option(min=1, help="Most runs at once.")] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name (default host-pid).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Code and venv cache.")] = None,
    heartbeat_interval: Annotated[float, typer.Option(min=0.1, help="Most seconds between "
                                                      "heartbeats; the worker beats more often "
                                                      "when the control plane's lease asks "
                                                      "for it (a third of the lease).")] = 10.0,
    shutdown_grace: Annotated[float, typer.Option(min=0, help="On SIGTERM, seconds running "
                                                  "runs get to finish.")] = 30.0,
    poll_wait: Annotated[int, typer.Option(min=0, max=20, help="Long-poll seconds.")] = 20,
    visibility_timeout: Annotated[int, typer.Option(
        min=1, max=43_200, help="Seconds a received message stays hidden from other workers "
        "between heartbeats; a message of a worker that died shows again after this.")] = 60,
    may_trigger: Annotated[list[str] | None, typer.Option(
        "--may-trigger", help="A deployment ('flow/name') this worker's flows may start with "
        "run_deployment (repeatable; embedded server: needs the operator's token or a pool "
        "token granting it; on AWS grant the worker's role instead).")] = None,
    profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Long-poll the pool's queue and run flows in subprocesses until Ctrl-C/SIGTERM."""
    from sluice_worker.serve import exec_worker  # the CLI is the composition root

    from ..exceptions import ConfigurationError
    from ..models.names import name_problem
    from ..tokens import trigger_grant

    problem = None if name is None else name_problem(name, "worker")
    if problem is not None:  # refused here, not at every claim (`sluice.models.names`)
        raise ConfigurationError(f"--name: {problem}")
    # The options are checked here; the worker then runs in this process without the CLI.
    exec_worker(dict(pool=pool, limit=limit, name=name, profile=profile, api_url=api_url,
                     cache_dir=str(cache_dir) if cache_dir else None,
                     heartbeat_interval=heartbeat_interval, shutdown_grace=shutdown_grace,
                     poll_wait=poll_wait, visibility_timeout=visibility_timeout,
                     may_trigger=[trigger_grant(ref) for ref in may_trigger or ()]),
                argv=sys.argv[1:])


@app.command("run-one")
def run_one(
    pool: Annotated[str | None, typer.Option(help="The run's work pool (default: "
                                             "SLUICE_POOL).")] = None,
    flow_run: Annotated[str | None, typer.Option("--flow-run", help="The flow run id (default: "
                                                 "SLUICE_FLOW_RUN_ID).")] = None,
    lease: Annotated[str | None, typer.Option(help="A lease already claimed for the run, e.g. "
                                              "by a Fargate pool's dispatcher (default: "
                                              "SLUICE_LEASE; none: claim the run).")] = None,
    attempt: Annotated[int | None, typer.Option(min=0, help="The attempt the run's message "
                                                "named (default: SLUICE_ATTEMPT).")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default host-pid).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Code and venv cache.")] = None,
    profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Run one flow run in this process and exit: 0 when it completed (or was cancelled, or was
    not ours to run), 1 when it failed or crashed. What a Fargate pool's task runs."""
    from sluice_worker.run_one_command import run_one_command  # the CLI is the composition root

    from ..exceptions import ConfigurationError
    from ..models.names import name_problem

    problem = None if name is None else name_problem(name, "worker")
    if problem is not None:
        raise ConfigurationError(f"--name: {problem}")
    result = run_one_command(pool=pool, flow_run_id=flow_run, lease=lease, attempt=attempt,
                             name=name, profile=profile, api_url=api_url, cache_dir=cache_dir)
    typer.echo(result.message, err=True)
    raise typer.Exit(result.exit_code)


@app.command("ls")
def list_workers(
    pool: Annotated[str | None, typer.Option(help="Only the workers of this pool.")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """List the workers the pools have seen, online first.

    A worker is online while its heartbeats arrive; --json gives names and hosts uncut."""
    from rich.markup import escape

    from . import output

    with client(profile, api_url) as api:
        names = [pool] if pool else [p.name for p in api.list_pools()]
        workers = [w for name in names for w in api.get_pool(name).workers]
    workers.sort(key=lambda w: (not w.online, w.pool, w.name))
    if json:
        output.print_json(workers)
        return
    if not workers:
        output.console.print("no workers have polled yet; start one with "
                             f"`sluice worker start --pool {escape(pool or 'default')}`",
                             highlight=False)
        return
    output.console.print(workers_table(workers))


def workers_table(workers: list, title: str | None = None):  # noqa: ANN201
    """Workers as `worker ls` and `pool inspect` show them. At 80 columns the short columns
    keep their width and names and hosts give way: cut short with an ellipsis (full values in
    --json), never folded over two lines."""
    from rich.text import Text

    from . import output

    rows = [[w.name, w.pool, w.host or "-", str(w.slots or "-"), w.version or "-",
             output.ago(w.last_seen),
             Text("online", style="green") if w.online else Text("offline", style="dim")]
            for w in workers]
    return output.listing(title, [output.Col("worker", "name", least=10),
                                  output.Col("pool", "name", least=8),
                                  output.Col("host", "name", least=8),
                                  output.Col("slots", justify="right"), output.Col("version"),
                                  output.Col("last seen"), output.Col("status")], rows)
