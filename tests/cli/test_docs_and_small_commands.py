"""Issue 15: the docs a new user reads first, and the small commands operators reach for. The
commands run the real CLI (`python -m sluice.cli`) against a real embedded server."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from sluice.cli import app

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        for part in line.split("&&"):
            if part.strip():
                commands.append(shlex.split(part))
    return commands


def test_quickstart_is_five_commands_that_exist():
    commands = quickstart_commands()
    assert [c[0] for c in commands] == ["make", ".", "sluice", "sluice", "sluice", "sluice"]
    assert commands[0] == ["make", "install"]
    assert re.search(r"^install:", (ROOT / "Makefile").read_text(), re.M)
    root = typer.main.get_command(app)
    for args in commands[2:]:
        command, rest = root, args[1:]
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        assert not hasattr(command, "commands"), args
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        used = {a for a in rest if a.startswith("--")}
        assert used <= known, (args, used - known)
    deploy = next(c for c in commands if c[1] == "deploy")
    assert {"--cron", "--interval"} & set(deploy), "the quickstart deploys on a schedule"
    assert (ROOT / "examples" / deploy[2].split(":")[0]).exists() or \
        (ROOT / deploy[2].split(":")[0]).exists()


def test_architecture_doc_is_linked_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/architecture.md)" in readme
    assert "../shared/DESIGN.md" not in readme
    doc = ROOT / "docs" / "architecture.md"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" not in target:
            assert (doc.parent / target).exists(), target


def one_line(done) -> str:  # noqa: ANN001
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    return lines[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.e2e.harness import Sluice, free_port

    sluice = Sluice(tmp_path_factory.mktemp("cli-small") / "home", free_port())
    sluice.start_server()
    try:
        yield sluice
    finally:
        sluice.close()


def test_version_flag_and_command_print_the_version(tmp_path):
    from sluice import __version__
    from tests.e2e.harness import Sluice

    sluice = Sluice(tmp_path / "home", 1)  # no server: --version needs none
    for args in (["--version"], ["version"]):
        done = sluice.cli(*args)
        assert one_line(done) == __version__


def test_pool_create_twice_says_it_exists_and_keeps_its_settings(served):
    first = served.cli("pool", "create", "twice", "--concurrency", "3")
    assert one_line(first).startswith("pool twice created (queue ")
    again = served.cli("pool", "create", "twice")
    assert again.returncode == 0
    assert one_line(again) == ("pool twice exists, unchanged; --concurrency N or --description "
                               "T change it")
    assert served.cli_json("pool", "inspect", "twice")["concurrency_limit"] == 3
    changed = served.cli("pool", "create", "twice", "--description", "nightly")
    assert one_line(changed) == "pool twice exists; updated description none -> 'nightly'"
    pool = served.cli_json("pool", "inspect", "twice")
    assert (pool["concurrency_limit"], pool["description"]) == (3, "nightly")
    assert served.cli_json("pool", "create", "twice")["name"] == "twice"


def test_pool_create_refuses_a_bad_name_before_any_request(served):
    done = served.cli("pool", "create", "Bad_Name", check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "pool name 'Bad_Name'" in done.stderr


def test_worker_ls_lists_workers_across_pools_readable_at_80_columns(served, monkeypatch):
    served.cli("pool", "create", "gpu-workers-of-the-analytics-team")
    served.cli("pool", "create", "default")
    seen = {"default": ("build-7", "ci-runner-eu-west-1a-i-0123456789abcdef0.internal"),
            "gpu-workers-of-the-analytics-team": ("gpu-worker-with-a-rather-long-name-01",
                                                  "gpu01")}
    with served.api() as api:
        for pool, (name, host) in seen.items():
            answer = api.post(f"/pools/{pool}/workers",
                              json={"name": name, "host": host, "version": "0.1.0", "slots": 4})
            assert answer.status_code == 200, answer.text

    listed = served.cli_json("worker", "ls")
    assert {(w["pool"], w["name"], w["host"]) for w in listed} >= \
        {(pool, name, host) for pool, (name, host) in seen.items()}
    assert [w["name"] for w in served.cli_json("worker", "ls", "--pool", "default")] == ["build-7"]

    # In-process, on an 80-column terminal: one row per worker, no word folded over two lines.
    import io

    from rich.console import Console

    import sluice.cli.output as output
    from sluice.cli import main
    from sluice.settings import get_settings

    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(width=80, file=screen, color_system=None))
    monkeypatch.setenv("SLUICE_HOME", str(served.home))
    get_settings.cache_clear()
    assert main(["worker", "ls"]) == 0
    text = screen.getvalue()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == len(listed), text  # one line per worker
    header = next(line for line in lines if line.startswith("┃")).split("┃")
    for column in ("worker", "pool", "host", "slots", "version", "last seen", "status"):
        assert any(cell.strip() == column for cell in header), text
    # every column shown, none cropped
    assert all(row.count("│") == 8 and row.split("│")[7].strip() == "online"
               for row in rows), text
    assert "build-7" in text
