"""`sluice server start` is authenticated by default, and its secrets are its user's alone.

Real `sluice server start` processes: the token it makes on first start, where it keeps it, the
modes of what it writes, and the token sources it refuses (argv, short tokens).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from e2e.harness import SLUICE, Sluice, free_port
from sluice.tokens import MIN_TOKEN_CHARS


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def installation(tmp_path):
    sluice = Sluice(tmp_path / "home", free_port())
    yield sluice
    sluice.close()


def test_first_start_makes_a_strong_token_and_keeps_everything_private(installation):
    # Given an old data directory that others could read (as earlier versions left it)
    data = installation.home / "server"
    data.mkdir(parents=True)
    data.chmod(0o755)
    (data / "store.db").write_bytes(b"")
    (data / "store.db").chmod(0o644)
    # When the server starts
    installation.start_server()
    token = installation.token
    # Then it made a strong token, and only its user can read it, the profile or the data
    assert len(token) >= MIN_TOKEN_CHARS
    assert mode(data) == 0o700
    assert mode(data / "operator-token") == 0o600
    assert mode(installation.home / "profiles.toml") == 0o600
    assert f'api_token = "{token}"' in (installation.home / "profiles.toml").read_text()
    files = [p for p in data.rglob("*") if p.is_file()]
    assert len(files) >= 4 and {mode(p) for p in files} == {0o600}, \
        {p.name: oct(mode(p)) for p in files}
    # Every request needs it; the CLI has it from the profile.
    assert httpx.get(f"{installation.url}/health").status_code == 401
    assert installation.cli("pool", "ls").returncode == 0
    # The token is nowhere in the server's command line (`ps` shows argv to every user).
    assert installation.server is not None
    cmdline = Path(f"/proc/{installation.server.popen.pid}/cmdline").read_bytes()
    assert token.encode() not in cmdline
    # A restart keeps the same token (workers' derived tokens stay valid).
    installation.stop_server()
    installation.start_server()
    assert installation.token == token
    assert httpx.get(f"{installation.url}/health",
                     headers={"authorization": f"Bearer {token}"}).status_code == 200


def start_refused(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environment = {**os.environ, "SLUICE_HOME": str(home), **(env or {})}
    environment.pop("SLUICE_API_TOKEN", None) if "SLUICE_API_TOKEN" not in (env or {}) else None
    done = subprocess.run([*SLUICE, "server", "start", "--port", str(free_port()), *args],
                          env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout + done.stderr


def test_a_token_on_the_command_line_is_refused(tmp_path):
    output = start_refused(tmp_path / "home", "--token", "x" * 40)
    assert "visible to every local user" in output and "--token-file" in output
    assert not (tmp_path / "home" / "server").exists()  # nothing was written


@pytest.mark.parametrize("source", ["file", "environment"])
def test_short_tokens_are_refused(tmp_path, source):
    home = tmp_path / "home"
    if source == "file":
        short = tmp_path / "token"
        short.write_text("hunter2\n")
        output = start_refused(home, "--token-file", str(short))
    else:
        output = start_refused(home, env={"SLUICE_API_TOKEN": "hunter2"})
    assert f"at least {MIN_TOKEN_CHARS}" in output
    assert not (home / "profiles.toml").exists()


def test_a_token_from_a_file_is_used_and_not_copied_elsewhere(installation, tmp_path):
    chosen = "t" * 20 + "-0123456789abcdefghijkl"
    token_file = tmp_path / "operator.token"
    token_file.write_text(chosen + "\n")
    installation.start_server("--token-file", str(token_file))
    assert httpx.get(f"{installation.url}/health",
                     headers={"authorization": f"Bearer {chosen}"}).status_code == 200
    assert not (installation.home / "server" / "operator-token").exists()


def test_a_data_directory_that_is_a_file_is_refused_with_the_fix(tmp_path):
    data = tmp_path / "data"
    data.write_text("not a directory")
    output = start_refused(tmp_path / "home", "--data-dir", str(data))
    assert "is a file" in output and "--data-dir" in output
