"""The `sluice` command. It is the composition root: it imports the control plane, the worker
and the infra packages lazily, inside the commands that need them."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError as PydanticValidationError

from .. import __version__
from ..exceptions import ConfigurationError, NotFound, SluiceError, ValidationError
from . import deployments, flow_runs, pools, profiles, secrets, server, worker
from .output import errors

app = typer.Typer(name="sluice", no_args_is_help=True, add_completion=False,
                  help="Sluice: Python-native workflow orchestration.",
                  pretty_exceptions_enable=False)
app.add_typer(server.app, name="server")
app.add_typer(flow_runs.app, name="flow-run")
app.add_typer(pools.app, name="pool")
app.add_typer(profiles.app, name="profile")
app.add_typer(worker.app, name="worker")
app.add_typer(deployments.app, name="deployment")
app.add_typer(secrets.app, name="secret")
app.command("deploy")(deployments.deploy)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


#: Exit codes: 0 success, 1 an error of the operation, 2 bad usage or configuration,
#: 3 not found (so scripts can tell "missing" from "broken").
EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode click hands back a command's exit code instead of exiting.
        result = app(args=argv, standalone_mode=False, prog_name="sluice")
        if isinstance(result, int):
            return result
    except SluiceError as exc:
        errors.print(f"[red]error:[/red] {exc.message}", highlight=False)
        code = EXIT_NOT_FOUND if isinstance(exc, NotFound) else \
            EXIT_USAGE if isinstance(exc, (ConfigurationError, ValidationError)) else EXIT_FAILURE
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        errors.print("aborted")
        return 130
    except PydanticValidationError as exc:
        # A request model refused what was typed (a name, a tag, a URL): say which and why.
        from rich.markup import escape

        from ..deployments import explain_invalid

        errors.print(f"[red]error:[/red] {escape(explain_invalid(exc).message)}",
                     highlight=False)
        return EXIT_USAGE
    except Exception as exc:
        # Usage errors of the click that typer bundles: they know how to show themselves.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return exc.exit_code
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            return exc.exit_code
        raise
    return 0


def entrypoint() -> None:
    sys.exit(main())
