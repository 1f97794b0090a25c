"""Attack: a deployment's code source is acted on by the worker (`git clone <repository>`,
`checkout <ref>`, `<project>/<subdirectory>`, import of the entrypoint's file). A repository
of `--upload-pack=<command>` ran the command; `subdirectory="../../"` and an absolute
entrypoint reached outside the project. The worker refuses them itself (defence in depth: the
API checks the same fields, but stored deployments and other writers are not trusted), and
nothing is run or written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sluice.models import CodeSource, SourceKind
from sluice_worker import sources
from sluice_worker.sources import CodeCache, CodeUnavailable


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pipelines").mkdir(parents=True)
    (repo / "pipelines" / "flows.py").write_text("x = 1\n")
    (tmp_path / "outside.py").write_text("secret = 1\n")
    os.symlink(tmp_path / "outside.py", repo / "pipelines" / "escape.py")
    os.symlink(tmp_path, repo / "up")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "flows"], check=True)
    return repo


def git_source(repository: str, **fields: str) -> CodeSource:
    # model_construct: the API's own checks are skipped, as for a stored or forged deployment
    return CodeSource.model_construct(kind=SourceKind.GIT, repository=repository,
                                      ref=fields.get("ref", "main"),
                                      subdirectory=fields.get("subdirectory"), path=None,
                                      requirements=None, bundle_sha256=None)


def nothing_written(cache_root: Path) -> bool:
    return not cache_root.exists() or not any(cache_root.rglob("*"))


@pytest.mark.parametrize("repository", [
    "--upload-pack=touch {marker}",
    "-u touch {marker}",
    "ext::sh -c touch% {marker}",
    "http://example.com/repo.git",
    "git://example.com/repo.git",
    "ssh://-oProxyCommand=touch%20{marker}/x",
])
def test_a_repository_that_is_not_an_allowed_url_is_refused_and_nothing_runs(tmp_path,
                                                                           repository):
    marker = tmp_path / "pwned"
    cache = CodeCache(tmp_path / "cache")
    with pytest.raises(CodeUnavailable):
        cache.directory(git_source(repository.format(marker=marker)))
    assert not marker.exists()
    assert nothing_written(tmp_path / "cache")


def test_the_repository_goes_after_double_dash_even_if_the_check_were_bypassed(tmp_path,
                                                                            monkeypatch):
    # Given the URL check switched off, When git gets an option-looking repository
    monkeypatch.setattr(sources, "check_repository", lambda url: url)
    marker = tmp_path / "pwned"
    with pytest.raises(CodeUnavailable, match="failed"):
        CodeCache(tmp_path / "cache").directory(git_source(f"--upload-pack=touch {marker}"))
    # Then git read it as a (missing) repository path, never as an option: nothing ran
    assert not marker.exists()


def test_a_ref_that_looks_like_an_option_is_refused(tmp_path, repo):
    with pytest.raises(CodeUnavailable, match="source.ref"):
        CodeCache(tmp_path / "cache").directory(git_source(f"file://{repo}", ref="--orphan"))
    assert nothing_written(tmp_path / "cache")


@pytest.mark.parametrize("subdirectory", ["../..", "/etc", "up", "pipelines/../.."])
def test_a_subdirectory_outside_the_checkout_is_refused(tmp_path, repo, subdirectory):
    with pytest.raises(CodeUnavailable, match="subdirectory"):
        CodeCache(tmp_path / "cache").directory(
            git_source(f"file://{repo}", subdirectory=subdirectory))


@pytest.mark.parametrize("entrypoint", ["/etc/passwd.py:main", "../../outside.py:main",
                                        "escape.py:main"])
def test_an_entrypoint_outside_the_project_is_refused(tmp_path, repo, entrypoint):
    # the last one is a symlink inside the checkout whose target is outside it
    with pytest.raises(CodeUnavailable, match="entrypoint"):
        CodeCache(tmp_path / "cache").directory(
            git_source(f"file://{repo}", subdirectory="pipelines"), entrypoint=entrypoint)


def test_a_requirements_file_outside_the_project_is_refused(tmp_path, repo):
    cache = CodeCache(tmp_path / "cache")
    code_dir = cache.directory(git_source(f"file://{repo}", subdirectory="pipelines"))
    for requirements in ("../../outside.py", "escape.py", "/etc/hostname"):
        with pytest.raises(CodeUnavailable, match="requirements file"):
            cache.python_for(code_dir, requirements)
    assert not (tmp_path / "cache" / "venvs").exists()  # no venv was built


def test_a_good_git_source_still_works(tmp_path, repo):
    code_dir = CodeCache(tmp_path / "cache").directory(
        git_source(f"file://{repo}", subdirectory="pipelines"), entrypoint="flows.py:main")
    assert (code_dir / "flows.py").read_text() == "x = 1\n"


def test_a_local_source_entrypoint_must_stay_in_its_directory(tmp_path, repo):
    source = CodeSource(kind=SourceKind.LOCAL, path=str(repo / "pipelines"))
    cache = CodeCache(tmp_path / "cache")
    assert cache.directory(source, entrypoint="flows.py:main") == repo / "pipelines"
    with pytest.raises(CodeUnavailable, match="outside the project"):
        cache.directory(source, entrypoint="escape.py:main")
