"""`sluice worker start` leaves the CLI once its options are checked (`sluice_worker.serve`):
the worker runs in the same process without typer and rich, and its errors still end as the
CLI's do (one line naming the cause and the fix, the CLI's exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys

from sluice.exceptions import ConfigurationError
from sluice_worker import serve

EXIT_USAGE, EXIT_UNAVAILABLE = 2, 69


def test_an_error_after_the_hand_over_is_reported_as_by_the_cli(monkeypatch, capsys):
    # Given a worker whose start fails after the CLI is gone
    def refuse(**options):
        raise ConfigurationError("--pool: no such pool; create it with `sluice pool create`")

    monkeypatch.setattr("sluice_worker.run_worker", refuse)
    # When the lean entry runs it, Then it prints the one line and exits like the CLI
    code = serve.main([json.dumps({"options": {"pool": "p"}, "argv": ["worker", "start"]})])
    assert code == EXIT_USAGE
    assert "no such pool; create it with `sluice pool create`" in capsys.readouterr().err


def test_the_command_hands_over_to_a_process_without_the_cli(tmp_path):
    # Given the command started against a control plane that is not there
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['sluice', 'worker', 'start', '--api-url', 'http://127.0.0.1:1',"
        " '--poll-wait', '1']\n"
        "from sluice.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={"SLUICE_HOME": str(tmp_path), "PATH": "/usr/bin"})
    # Then the worker (after the hand-over) fails as the CLI would: unreachable, exit 69
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert "is unreachable" in done.stderr and "sluice server start" in done.stderr


def test_the_lean_worker_does_not_import_the_cli():
    # The module the process becomes imports neither typer nor rich before the worker runs
    code = ("import sys; import sluice_worker.serve as serve; "
            "from sluice_worker.lean_imports import import_httpx_without_its_cli; "
            "import_httpx_without_its_cli(); import sluice_worker.worker; "
            "print(sorted(m for m in ('typer', 'rich', 'click', 'sluice.cli') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"
