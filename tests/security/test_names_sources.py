"""Issue 13, paths: a deployment's code source is refused (422 naming the field and the fix,
nothing written) when git would read the repository or ref as an option or run a command, or
when the subdirectory, requirements file or entrypoint would leave the project. The SDK and the
CLI refuse the same before sending anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.exceptions import ConfigurationError

from .names_support import GOOD_DEPLOYMENT, api  # noqa: F401 - the fixture


def git(**fields: str) -> dict[str, str]:
    return {"kind": "git", "repository": "https://github.com/acme/flows.git", **fields}


def attacks(marker: Path) -> list[tuple[dict, str]]:
    """(deployment fields, field named in the refusal); `marker` is what a command would touch."""
    return [
        ({"source": git(repository=f"--upload-pack=touch {marker}")}, "source.repository"),
        ({"source": git(repository=f"-u touch {marker}")}, "source.repository"),
        ({"source": git(repository=f"ext::sh -c touch% {marker}")}, "source.repository"),
        ({"source": git(repository=f"ssh://-oProxyCommand=touch {marker}/x")},
         "source.repository"),
        ({"source": git(repository="git@-oProxyCommand=x:repo")}, "source.repository"),
        ({"source": git(repository="http://insecure.example/repo.git")}, "source.repository"),
        ({"source": git(repository="/srv/repo")}, "source.repository"),
        ({"source": git(ref=f"--upload-pack=touch {marker}")}, "source.ref"),
        ({"source": git(ref="main..evil")}, "source.ref"),
        ({"source": git(subdirectory="../../")}, "source.subdirectory"),
        ({"source": git(subdirectory="/etc")}, "source.subdirectory"),
        ({"source": git(subdirectory="a/../../b")}, "source.subdirectory"),
        ({"source": git(subdirectory="..\\..\\x")}, "source.subdirectory"),
        ({"source": git(subdirectory="x\x00y")}, "source.subdirectory"),
        ({"source": git(requirements="/etc/passwd")}, "source.requirements"),
        ({"source": git(requirements="../other/requirements.txt")}, "source.requirements"),
        ({"source": {"kind": "bundle", "bundle_sha256": "../../etc"}}, "source.bundle_sha256"),
        ({"entrypoint": f"{marker}.py:flow"}, "entrypoint"),
        ({"entrypoint": "../outside.py:flow"}, "entrypoint"),
        ({"entrypoint": "C:\\flows\\etl.py:flow"}, "entrypoint"),
        ({"entrypoint": "flows.py:not-an-identifier"}, "entrypoint"),
        ({"entrypoint": "os.system('x'):flow"}, "entrypoint"),
    ]


def test_every_source_attack_is_refused_and_nothing_is_written_or_run(api, tmp_path):
    # Given a marker file any injected command would create
    marker = tmp_path / "pwned"
    for fields, field in attacks(marker):
        # When a deployment carries the attack
        answer = api.post("/deployments", {**GOOD_DEPLOYMENT, **fields})
        # Then it is refused naming the field and a fix, and nothing is stored or run
        assert answer.status == 422, (fields, answer.json)
        assert field in answer.json["message"], (fields, answer.json["message"])
        assert any(hint in answer.json["message"] for hint in ("give", "must look like", "remove", "must be")), \
            answer.json["message"]
    assert api.writes == []
    assert api.get("/deployments").json["items"] == []
    assert not marker.exists()


@pytest.mark.parametrize("source", [
    git(),
    git(repository="ssh://git@github.com/acme/flows.git", ref="v1.2.0", subdirectory="src"),
    git(repository="git@github.com:acme/flows.git", ref="feature/x", requirements="req.txt"),
    git(repository="file:///srv/git/flows.git", ref="0123abcd" * 5),
    {"kind": "bundle", "bundle_sha256": "ab" * 32, "subdirectory": "./pkg"},
    {"kind": "local", "path": "/home/ana/project"},
])
def test_sources_inside_the_rules_are_accepted(api, source):
    # Given a usual source, When it is deployed Then it is stored
    answer = api.post("/deployments", {**GOOD_DEPLOYMENT, "source": source,
                                       "entrypoint": "pkg/flows.py:etl"})
    assert answer.status == 200, answer.json


def test_the_sdk_refuses_a_bad_source_before_sending_anything(tmp_path):
    # Given a flow and a client that records what it is sent
    from sluice import flow
    from sluice.models import CodeSource

    sent: list[object] = []

    class Client:
        def create_deployment(self, request):  # noqa: ANN001, ANN202
            sent.append(request)

    @flow(name="etl")
    def etl() -> None: ...

    # When it is deployed from a git repository that is an option for git
    with pytest.raises(ConfigurationError) as refused:
        etl.deploy("nightly", source=CodeSource(kind="git", repository="--upload-pack=x"),
                   entrypoint="flows.py:etl", client=Client())
    # Then the refusal names the field and nothing was sent
    assert "source.repository" in refused.value.message and sent == []
    # And so for a deployment name with a path separator
    with pytest.raises(ConfigurationError, match="deployment name 'x/y'"):
        etl.deploy("x/y", entrypoint="flows.py:etl", client=Client(), project_dir=tmp_path)
    assert sent == []
