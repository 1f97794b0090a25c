"""`sluice server start`: the whole control plane on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="The embedded control plane.")


@app.command()
def start(
    host: Annotated[str, typer.Option(help="Address to bind; beyond loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 = any free port).")] = 4300,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite data lives "
                                                  "(default SLUICE_HOME/server).")] = None,
    token: Annotated[str | None, typer.Option(envvar="SLUICE_API_TOKEN",
                                              help="Bearer token every request must carry.")]
    = None,
    scheduler_interval: Annotated[float, typer.Option(help="Seconds between scheduler and "
                                                      "monitor ticks.")] = 5.0,
    retention_days: Annotated[int, typer.Option(min=1, max=3650, help="Finished runs older "
                                                "than this are deleted with their logs.")] = 30,
) -> None:
    """Serve the API, an SQS-compatible queue endpoint and the schedule timers until Ctrl-C."""
    from sluice_functions.embedded import run_server  # the CLI is the composition root

    run_server(host=host, port=port, data_dir=data_dir, token=token,
               tick_seconds=scheduler_interval, retention_days=retention_days)
