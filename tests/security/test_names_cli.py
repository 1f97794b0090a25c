"""Issue 13, names in the terminal: `sluice deployment ls`, `pool ls` and `flow-run ls` print
control, bidi and invisible characters of stored names as escapes (a record stored before the
name rules must not drive the terminal of whoever lists it), and the CLI refuses bad names
before sending anything (exit 2, the field and the character named)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest

from sluice.cli import main
from sluice.models import Deployment, FlowRun, Page, Pool, Scheduled

#: What a terminal would act on, and the Unicode controls that reorder or hide text.
DANGEROUS = ("\x1b", "\r", "\x00", "\x07", "\x85", "\u202e", "\u2066", "\u200b")
EVIL = "x\x1b[2J\x1b]0;pwned\x07\r\x00\x85\u202egpj.exe\u2066\u200b"


class FakeApi:
    """The API as the CLI sees it: stored records with hostile names; records every write."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def list_deployments(self, **_: Any) -> Page[Deployment]:
        return Page[Deployment](items=[Deployment(
            id="d1", flow_name=EVIL, name=EVIL, entrypoint="f.py:f", pool="default",
            tags=[EVIL])])

    def list_pools(self) -> list[Pool]:
        return [Pool(name=EVIL)]

    def get_pool(self, name: str) -> Pool:
        return Pool(name=name, workers=[{"name": EVIL, "pool": name, "host": EVIL}])

    def list_flow_runs(self, *_: Any, **__: Any) -> Page[FlowRun]:
        return Page[FlowRun](items=[FlowRun(id="r1", flow_name=EVIL, name=EVIL,
                                            state=Scheduled())])

    def __getattr__(self, name: str) -> Any:
        def write(*args: Any, **kwargs: Any) -> None:
            self.sent.append((name, args))
        return write


@pytest.fixture
def fake_api(monkeypatch):
    api = FakeApi()

    @contextmanager
    def client(*_: Any, **__: Any):
        yield api

    for module in ("deployments", "pools", "flow_runs"):
        monkeypatch.setattr(f"sluice.cli.{module}.client", client)
    return api


@pytest.mark.parametrize("command", [["deployment", "ls"], ["pool", "ls"], ["flow-run", "ls"]])
def test_listing_stored_hostile_names_prints_escapes_not_control_codes(fake_api, capsys,
                                                                       command):
    # Given records stored under names full of terminal controls
    # When they are listed in a table
    code = main(command)
    out = capsys.readouterr().out
    # Then the table shows them escaped, and no control character reaches the terminal
    assert code == 0, out
    assert "\\x1b" in out and "\\u202e" in out
    assert [c for c in DANGEROUS if c in out] == []


@pytest.mark.parametrize(("argv", "shown"), [
    (["pool", "create", "default-dlq"], "dead-letter queue of pool 'default'"),
    (["pool", "create", "gpu\x1b[31m"], "\\x1b"),
    (["deployment", "run", "etl/nightly", "--param", "k\u202e=1"], "\\u202e"),
])
def test_the_cli_refuses_bad_names_before_sending(fake_api, capsys, argv, shown):
    # Given a bad name typed on the command line
    # When the command runs
    code = main(argv)
    err = capsys.readouterr().err
    # Then it exits 2 naming the character, with no control character echoed, and sent nothing
    assert code == 2, err
    assert shown in " ".join(err.split()), err
    assert [c for c in DANGEROUS if c in err] == []
    assert fake_api.sent == []


def test_a_worker_with_a_bad_name_does_not_start(monkeypatch, capsys):
    # Given a worker name no claim would accept
    started: list[object] = []
    monkeypatch.setattr("sluice_worker.serve.exec_worker", lambda *a, **kw: started.append(kw))
    # When the worker is started with it
    code = main(["worker", "start", "--name", "gpu\x1b[31m"])
    # Then it refuses at once (not at every claim), naming the character, and nothing started
    assert code == 2 and "\\x1b" in capsys.readouterr().err
    assert started == []
