"""`sluice server start`: the whole control plane on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="The embedded control plane.")


@app.command()
def start(
    host: Annotated[str, typer.Option(help="Address to bind (beyond loopback, also pass "
                                      "--tls-cert/--tls-key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 = any free port).")] = 4300,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite data lives "
                                                  "(default SLUICE_HOME/server).")] = None,
    token_file: Annotated[Path | None, typer.Option(
        dir_okay=False, help="File holding the operator token every request must carry "
        "(default: SLUICE_API_TOKEN, else one made on first start in the data directory and "
        "written to the 0600 `local` profile).")] = None,
    token: Annotated[str | None, typer.Option(hidden=True)] = None,
    scheduler_interval: Annotated[float, typer.Option(help="Seconds between scheduler and "
                                                      "monitor ticks.")] = 5.0,
    retention_days: Annotated[int, typer.Option(min=1, max=3650, help="Finished runs older "
                                                "than this are deleted with their logs.")] = 30,
    tls_cert: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, readable=True,
        help="PEM certificate (with its chain) to serve HTTPS with; needs --tls-key. The local "
             "profile then trusts this certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, readable=True,
        help="Unencrypted PEM private key of --tls-cert.")] = None,
) -> None:
    """Serve the API, an SQS-compatible queue endpoint and the schedule timers until Ctrl-C."""
    if token is not None:
        from ..exceptions import ConfigurationError

        raise ConfigurationError(
            "--token is refused: a token on the command line is visible to every local user "
            "(`ps`); put it in a file (--token-file) or SLUICE_API_TOKEN, or leave it out and "
            "the server makes one")
    from sluice_functions.embedded import run_server  # the CLI is the composition root

    run_server(host=host, port=port, data_dir=data_dir, token_file=token_file,
               tick_seconds=scheduler_interval, retention_days=retention_days,
               tls_cert=tls_cert, tls_key=tls_key)
