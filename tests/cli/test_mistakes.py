"""Issue 15: mistakes are caught early, with the fix, never with a traceback. Each test runs
the real CLI (`python -m sluice.cli`) and asserts the one-line message and the exit code."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.cli.served import served_project
from tests.e2e.harness import free_port

FLOWS = textwrap.dedent('''
    from sluice import flow


    @flow
    def greet(name: str = "world", n: int = 1) -> str:
        return name * n


    @flow(name="other-flow")
    def other() -> None:
        pass
''')


def one_line_error(done) -> str:  # noqa: ANN001
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_project(tmp_path_factory.mktemp("cli-mistakes"), FLOWS) as both:
        yield both


def test_deployment_run_with_an_unknown_parameter_is_refused_and_creates_nothing(served):
    sluice, project = served
    sluice.cli("deploy", "flows.py:greet", "--name", "g", "--project-dir", str(project),
               cwd=project)
    done = sluice.cli("deployment", "run", "greet/g", "--param", "nosuch=3", check=False)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "parameters.nosuch: is not an accepted parameter" in line
    assert "sluice deployment inspect greet/g" in line
    done = sluice.cli("deployment", "run", "greet/g", "--param", "n=abc", check=False)
    assert done.returncode == 2
    assert "parameters.n: must be of type integer, got string" in one_line_error(done)
    runs = json.loads(sluice.cli("flow-run", "ls", "--json").stdout)
    assert runs == []


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90):
    import os
    import subprocess
    import sys

    environment = {**os.environ, "SLUICE_HOME": str(tmp_path / "home"), **(env or {})}
    for var in ("SLUICE_API_URL", "SLUICE_PROFILE", "SLUICE_API_TOKEN", "SLUICE_DEBUG"):
        if var not in (env or {}):
            environment.pop(var, None)
    return subprocess.run([sys.executable, "-m", "sluice.cli", *args], env=environment,
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def test_a_port_in_use_is_one_line_with_exit_code_4(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_cli(tmp_path, "server", "start", "--port", str(port))
    assert done.returncode == 4
    line = one_line_error(done)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line


def test_an_invalid_pool_name_is_one_line_with_exit_code_2(tmp_path):
    done = run_cli(tmp_path, "pool", "create", "Bad_Name", "--api-url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "pool name 'Bad_Name'" in one_line_error(done)


def test_deploying_a_file_with_a_syntax_error_names_the_line(tmp_path):
    (tmp_path / "broken.py").write_text("from sluice import flow\n\ndef x(:\n")
    done = run_cli(tmp_path, "deploy", "broken.py:x", "--name", "a")
    assert done.returncode == 2
    line = one_line_error(done)
    assert "broken.py:3: invalid syntax; fix the file and deploy again" in line


def test_deploying_a_file_with_an_import_error_says_what_to_install(tmp_path):
    (tmp_path / "imports.py").write_text("import nosuchmodule_xyz\n")
    done = run_cli(tmp_path, "deploy", "imports.py:x", "--name", "a")
    assert done.returncode == 2
    line = one_line_error(done)
    assert "importing imports.py failed: No module named 'nosuchmodule_xyz'" in line
    assert "pip install nosuchmodule_xyz" in line


def test_an_unreachable_control_plane_says_how_to_start_one(tmp_path):
    from tests.e2e.harness import free_port

    done = run_cli(tmp_path, "pool", "ls", "--api-url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 69
    line = one_line_error(done)
    assert "is unreachable" in line and "`sluice server start`" in line


@pytest.mark.parametrize("how", [["--debug"], []])
def test_debug_prints_the_traceback(tmp_path, how):
    (tmp_path / "broken.py").write_text("def x(:\n")
    env = {} if how else {"SLUICE_DEBUG": "1"}
    done = run_cli(tmp_path, *how, "deploy", "broken.py:x", "--name", "a", env=env)
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_the_help_documents_the_exit_codes(tmp_path):
    done = run_cli(tmp_path, "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    assert "69 control plane unreachable" in " ".join(done.stdout.split())


def test_a_second_server_on_the_same_data_directory_refuses_and_keeps_the_profile(served):
    sluice, _ = served
    profiles = (sluice.home / "profiles.toml").read_text()
    done = sluice.cli("server", "start", "--port", str(free_port()), check=False, timeout=90)
    assert done.returncode == 4
    line = one_line_error(done)
    assert "another sluice server (pid " in line and "is using the data directory" in line
    assert "--data-dir" in line
    assert (sluice.home / "profiles.toml").read_text() == profiles
    assert sluice._healthy()


def test_deploy_refuses_an_unknown_pool_unless_create_pool(served):
    sluice, project = served
    done = sluice.cli("deploy", "flows.py:greet", "--name", "p", "--pool", "nosuchpool",
                      "--project-dir", str(project), check=False, cwd=project)
    assert done.returncode == 3
    line = one_line_error(done)
    assert "pool 'nosuchpool' does not exist" in line and "--create-pool" in line
    assert sluice.cli("deployment", "inspect", "greet/p", check=False).returncode == 3
    sluice.cli("deploy", "flows.py:greet", "--name", "p", "--pool", "nosuchpool",
               "--create-pool", "--project-dir", str(project), cwd=project)
    assert json.loads(sluice.cli("pool", "inspect", "nosuchpool", "--json").stdout)


def test_a_flow_missing_from_the_file_lists_the_flows_it_has(tmp_path):
    (tmp_path / "flows.py").write_text(FLOWS)
    done = run_cli(tmp_path, "deploy", "flows.py:nosuch", "--name", "a")
    assert done.returncode == 2
    assert ("flows.py has no flow 'nosuch': its flows are greet, other (use flows.py:greet)"
            in one_line_error(done))
