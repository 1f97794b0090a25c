"""Attack: `sluice deploy --source bundle` shipped `.env`, `credentials.ini`, private keys and
the targets of symlinks leaving the project to the bundle bucket (and every worker's disk).
Each test: the file is refused or left out, and nothing of it reaches the zip."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from sluice.bundles import build_bundle, plan_bundle
from sluice.exceptions import ConfigurationError

SECRET_FILES = [
    ".env", ".env.production", "credentials.ini", "config/credentials", "server.pem",
    "tls/server.key", "id_rsa", "id_rsa.pub", "id_ed25519", "keys/id_ecdsa", "id_dsa",
    ".aws/credentials", ".aws/config", ".ssh/known_hosts", ".netrc", ".pypirc",
    "certs/client.p12", "certs/client.pfx", "ID_RSA", "Server.PEM",
]
NOISE_FILES = [
    ".git/config", ".venv/lib/site.py", "venv/bin/activate", "env2/lib/x.py",
    "pkg/__pycache__/m.cpython-311.pyc", ".pytest_cache/v", ".mypy_cache/x.json",
    ".ruff_cache/x", "web/node_modules/left-pad/index.js",
]


def make_project(root: Path, files: list[str]) -> Path:
    for name in ["flows.py", *files]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
    if (root / "env2").is_dir():
        (root / "env2" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a venv of any name
    return root


def zipped_names(root: Path) -> set[str]:
    data, _, _ = build_bundle(root)
    return set(zipfile.ZipFile(io.BytesIO(data)).namelist())


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.com",
                    "-c", "user.name=t", *args], check=True, capture_output=True)


@pytest.mark.parametrize("in_git", [False, True], ids=["plain-directory", "git-tracked"])
def test_secret_looking_files_venvs_and_caches_are_left_out(tmp_path, in_git):
    # Given a project with secret-looking files, a venv, caches and VCS metadata
    files = SECRET_FILES + [f for f in NOISE_FILES if not (in_git and f.startswith(".git/"))]
    root = make_project(tmp_path / "project", files)
    if in_git:
        # ... all of them tracked by git (`git ls-files` lists tracked files whatever
        # .gitignore says; the defaults must still apply)
        git(root, "init", "-q")
        git(root, "add", "-f", ".")
        git(root, "commit", "-qm", "everything")
    # When it is bundled
    names = zipped_names(root)
    # Then only the code ships
    assert names == {"flows.py"}
    # And the plan says why each secret was left out
    reasons = {e.path: e.reason for e in plan_bundle(root).secret_exclusions}
    assert reasons[".env"] == "secret-looking (default `.env*`)"
    assert reasons[".aws/"] == "secret-looking (default `.aws/`)"
    assert "credentials.ini" in reasons and "Server.PEM" in reasons


def test_a_bang_pattern_in_sluiceignore_reincludes_a_default_exclusion(tmp_path):
    # Given defaults that would drop an example env file and one file of a .aws directory
    root = make_project(tmp_path / "project", [".env", ".env.example", ".aws/config",
                                               ".aws/credentials", "flows/credentials.py"])
    (root / ".sluiceignore").write_text("!.env.example\n!/.aws/config\n!flows/credentials.py\n")
    # When it is bundled
    names = zipped_names(root)
    # Then exactly the re-included files ship, and their neighbours do not
    assert {".env.example", ".aws/config", "flows/credentials.py"} <= names
    assert ".env" not in names and ".aws/credentials" not in names


def test_an_unanchored_bang_pattern_does_not_reach_into_an_excluded_directory(tmp_path):
    # Given `!*.key` (meant for a fixture key) and a key inside the virtualenv
    root = make_project(tmp_path / "project", ["tests/fixture.key", ".venv/lib/real.key"])
    (root / ".sluiceignore").write_text("!*.key\n")
    # When it is bundled, Then the fixture ships but nothing of .venv does (as in git)
    names = zipped_names(root)
    assert "tests/fixture.key" in names and not any(n.startswith(".venv") for n in names)


def test_sluiceignore_still_excludes_more(tmp_path):
    root = make_project(tmp_path / "project", ["data/big.csv", "notes.txt"])
    (root / ".sluiceignore").write_text("data/\n*.txt\n")
    assert zipped_names(root) == {"flows.py", ".sluiceignore"}


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_symlink_leaving_the_project_is_refused(tmp_path, kind):
    # Given a link to a file (or directory) outside the project
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    root = make_project(tmp_path / "project", [])
    os.symlink(outside / "passwd" if kind == "file" else outside, root / "linked")
    # When it is bundled, Then the bundle is refused, naming the link and the fixes
    with pytest.raises(ConfigurationError) as refused:
        build_bundle(root)
    message = str(refused.value)
    assert "linked is a symlink to" in message and "outside the project" in message
    assert "`/linked` to .sluiceignore" in message and "copy the file" in message
    # And excluding it, as the message says, makes the bundle without it
    (root / ".sluiceignore").write_text("/linked\n")
    assert zipped_names(root) == {"flows.py", ".sluiceignore"}


def test_a_relative_symlink_climbing_out_is_refused_too(tmp_path):
    (tmp_path / "secret.txt").write_text("s3cret")
    root = make_project(tmp_path / "project", [])
    (root / "sub").mkdir()
    os.symlink("../../secret.txt", root / "sub" / "notes.txt")
    with pytest.raises(ConfigurationError, match="sub/notes.txt is a symlink"):
        build_bundle(root)


def test_a_symlink_inside_the_project_ships_as_the_file_content_never_as_a_link(tmp_path):
    root = make_project(tmp_path / "project", ["lib/helpers.py"])
    os.symlink("lib/helpers.py", root / "helpers.py")
    data, _, _ = build_bundle(root)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read("helpers.py") == b"content of lib/helpers.py\n"
    # the zip holds regular files only (mode bits of a regular file, no symlink entry)
    assert all((info.external_attr >> 16) & 0o170000 == 0o100000 for info in archive.infolist())


def test_a_symlink_to_an_excluded_file_does_not_smuggle_it_out(tmp_path):
    root = make_project(tmp_path / "project", [".env"])
    os.symlink(".env", root / "settings.cfg")
    plan = plan_bundle(root)
    assert [f.name for f in plan.files] == ["flows.py"]
    assert any(e.path == "settings.cfg -> .env" and e.secret for e in plan.excluded)


def test_a_symlink_to_a_directory_inside_the_project_is_refused(tmp_path):
    root = make_project(tmp_path / "project", ["lib/helpers.py"])
    os.symlink("lib", root / "lib2")
    with pytest.raises(ConfigurationError, match="lib2 is a symlink to the directory lib"):
        build_bundle(root)


def test_an_entrypoint_left_out_by_a_default_is_named_with_the_fix(tmp_path):
    root = make_project(tmp_path / "project", ["flows/credentials.py"])
    with pytest.raises(ConfigurationError) as refused:
        plan_bundle(root).require("flows/credentials.py")
    assert "`!/flows/credentials.py` to .sluiceignore" in str(refused.value)
