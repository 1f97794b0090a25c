"""The `sluice` command. It is the composition root: it imports the control plane, the worker
and the infra packages lazily, inside the commands that need them."""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError as PydanticValidationError

from .. import __version__
from ..exceptions import (BadRequest, ConfigurationError, Conflict, Forbidden, NotFound,
                          ServiceUnavailable, SluiceError, Unauthorized, ValidationError)
from . import deployments, flow_runs, flows, pools, profiles, secrets, server, task_runs, ui, worker
from .output import errors

#: Exit codes by kind of mistake, so scripts can tell them apart (sysexits' 69 and 77).
EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 1, 2, 3, 4
EXIT_UNAVAILABLE, EXIT_NOPERM = 69, 77

EPILOG = ("Errors print one line: the cause and the fix. Exit codes: 0 ok; 1 the operation "
          "failed (e.g. a watched run did not complete); 2 bad input or configuration; "
          "3 not found; 4 conflict (already exists, port in use, data directory held by "
          "another server); 69 control plane unreachable or unavailable; 77 not authorized. "
          "--debug or SLUICE_DEBUG=1 also prints the traceback.")

app = typer.Typer(name="sluice", no_args_is_help=True, add_completion=True,
                  help="Sluice: Python-native workflow orchestration.", epilog=EPILOG,
                  pretty_exceptions_enable=False)
_debug = False


def _show_version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit(0)


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", envvar="SLUICE_DEBUG",
                                        help="Print the traceback of an error too.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Sluice: Python-native workflow orchestration."""
    global _debug
    _debug = _debug or debug
app.add_typer(server.app, name="server")
app.add_typer(flow_runs.app, name="flow-run")
app.add_typer(flows.app, name="flow")
app.add_typer(task_runs.app, name="task-run")
app.add_typer(pools.app, name="pool")
app.add_typer(profiles.app, name="profile")
app.add_typer(worker.app, name="worker")
app.add_typer(deployments.app, name="deployment")
app.add_typer(secrets.app, name="secret")
from .events import app as events_app  # noqa: E402 - beside its registration
app.add_typer(events_app, name="events")
from .automations import app as automation_app  # noqa: E402 - beside its registration
app.add_typer(automation_app, name="automation")
from .admin import app as admin_app  # noqa: E402 - beside its registration
app.add_typer(admin_app, name="admin")
app.command("deploy")(deployments.deploy)
app.command("ui")(ui.ui)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def _debugging(argv: list[str] | None) -> bool:
    return _debug or "--debug" in (sys.argv[1:] if argv is None else argv) or \
        os.environ.get("SLUICE_DEBUG", "").lower() in ("1", "true", "yes")


def _fail(message: str, code: int, argv: list[str] | None) -> int:
    """Print the traceback (with --debug) and the one-line cause and fix; return the code."""
    from rich.markup import escape

    if _debugging(argv):
        import traceback

        traceback.print_exc()
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return code


def _sluice_error(exc: SluiceError) -> tuple[str, int]:
    message = exc.message
    if isinstance(exc, NotFound):
        return message, EXIT_NOT_FOUND
    if isinstance(exc, (ConfigurationError, ValidationError, BadRequest)):
        return message, EXIT_USAGE
    if isinstance(exc, Conflict):
        return message, EXIT_CONFLICT
    if isinstance(exc, (Unauthorized, Forbidden)):
        return message, EXIT_NOPERM
    if isinstance(exc, ServiceUnavailable):
        if exc.code == "unreachable":
            message += ("; start one with `sluice server start`, or point at one with "
                        "--api-url, SLUICE_API_URL or `sluice profile use NAME`")
        return message, EXIT_UNAVAILABLE
    return message, EXIT_FAILURE


def _os_error(exc: OSError) -> tuple[str, int]:
    where = f" ({exc.filename})" if exc.filename else ""
    cause = f"{exc.strerror or exc}{where}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{cause}: another process holds the port; stop it or pick another "
                "(--port)", EXIT_CONFLICT)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{cause}: not writable by this user; fix its permissions or use another " \
            "path", EXIT_USAGE
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST):
        return f"{cause}: check the path (a directory where a directory is expected)", \
            EXIT_USAGE
    return cause, EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes one line (the cause and the fix) on stderr and an exit
    code by kind (see EPILOG); --debug / SLUICE_DEBUG=1 adds the traceback."""
    try:
        # Without standalone mode click hands back a command's exit code instead of exiting.
        result = app(args=argv, standalone_mode=False, prog_name="sluice")
        if isinstance(result, int):
            return result
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, argv)
    return 0


def report_failure(exc: Exception | KeyboardInterrupt, argv: list[str] | None) -> int:
    """One line on stderr for an error a command raised (the cause and the fix) and its exit
    code; call it inside the `except` that caught `exc` (--debug re-raises it). Also what
    `sluice worker start` uses once it has left the CLI (`sluice_worker.serve`)."""
    if isinstance(exc, SluiceError):
        return _fail(*_sluice_error(exc), argv)
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    if isinstance(exc, typer.Abort):
        errors.print("aborted")
        return 130
    if isinstance(exc, PydanticValidationError):
        # A request model refused what was typed (a name, a tag, a URL): say which and why.
        from ..deployments import explain_invalid

        return _fail(explain_invalid(exc).message, EXIT_USAGE, argv)
    if isinstance(exc, KeyboardInterrupt):
        errors.print("interrupted")
        return 130
    # Usage errors of the click that typer bundles: they know how to show themselves.
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):
        exc.show()
        return exc.exit_code
    if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
        return exc.exit_code
    import httpx

    if isinstance(exc, httpx.TransportError):
        return _fail(*_sluice_error(_unreachable(exc)), argv)
    if isinstance(exc, OSError):
        return _fail(*_os_error(exc), argv)
    if _debugging(argv):
        raise exc
    return _fail(f"unexpected {type(exc).__name__}: {exc} (a bug: rerun with --debug "
                 "and report the traceback)", EXIT_FAILURE, argv)


def _unreachable(exc: Exception) -> SluiceError:
    from ..client.transport import Unreachable

    return Unreachable(f"control plane is unreachable: {exc}")


def entrypoint() -> None:
    sys.exit(main())
