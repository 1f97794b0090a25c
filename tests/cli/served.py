"""One way to serve a CLI test module: a real embedded server (and, when asked, a real worker)
with a project directory holding the module's flows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.harness import Sluice, free_port


@contextmanager
def served_project(root: Path, flows_source: str, *, worker: bool = False
                   ) -> Iterator[tuple[Sluice, Path]]:
    """Start a server under `root/home` (and a worker of the default pool) for a project at
    `root/project` whose flows.py is `flows_source`; stop them on exit."""
    project = root / "project"
    project.mkdir()
    (project / "flows.py").write_text(flows_source)
    sluice = Sluice(root / "home", free_port())
    sluice.start_server()
    try:
        if worker:
            sluice.start_worker()
        yield sluice, project
    finally:
        sluice.close()
