"""`sluice worker start` once its options are checked: the command replaces its process with
this module (`os.execv`: the same pid, signals, streams and environment), so an idle worker
does not keep the CLI (typer, rich and every command module, about 3 MiB; issue 20) in
memory for days. Errors end as the CLI's do: one line naming the cause and the fix, and the
same exit codes (the CLI's error reporting is imported only then)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn


def exec_worker(options: dict[str, Any], *, argv: list[str] | None) -> NoReturn:
    """Become `python -m sluice_worker.serve` running `run_worker(**options)`; `argv` is the
    command line the user typed (for --debug)."""
    request = json.dumps({"options": options, "argv": argv}, separators=(",", ":"))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "sluice_worker.serve", request])


def main(args: list[str]) -> int:
    request = json.loads(args[0])
    options = dict(request["options"])
    if options.get("cache_dir"):
        options["cache_dir"] = Path(options["cache_dir"])
    from .lean_imports import import_httpx_without_its_cli

    import_httpx_without_its_cli()  # before anything imports httpx (lean_imports)
    try:
        from . import run_worker

        run_worker(**options)
    except (Exception, KeyboardInterrupt) as exc:
        from sluice.cli import report_failure

        return report_failure(exc, request.get("argv"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
