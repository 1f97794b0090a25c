"""The public façade: pinned names, no side effects, nothing heavy on import."""

from __future__ import annotations

import subprocess
import sys

import sluice

EXPECTED_ALL = [
    "flow", "task", "Flow", "Task", "unmapped", "exponential_backoff",
    "allow_failure", "quote", "tags",
    "get_run_logger", "wait", "as_completed", "TaskFuture", "TaskFutureList", "secret",
    "emit_event",
    "run_flow", "use_reporter", "run_deployment",
    "ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner",
    "State", "StateType", "Completed", "Failed", "Cancelled", "Crashed", "Pending", "Running",
    "Scheduled", "Paused", "Cached",
    "SluiceError",
    "__version__",
]


def test_all_is_pinned():
    assert sluice.__all__ == EXPECTED_ALL


def test_every_public_name_resolves():
    for name in sluice.__all__:
        assert getattr(sluice, name) is not None


def test_unknown_name_raises_attribute_error():
    try:
        sluice.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    return set(out.stdout.split())


def test_import_sluice_loads_nothing_heavy():
    # When the package is imported, Then no submodule, pydantic, boto3, httpx or rich loads.
    loaded = _modules_after("import sluice")
    for heavy in ("boto3", "botocore", "httpx", "rich", "pydantic", "sluice.flows", "typer"):
        assert heavy not in loaded, heavy


def test_defining_flows_does_not_load_clients():
    # When a flow and a task are defined, Then still no AWS, HTTP or terminal library loads.
    loaded = _modules_after(
        "from sluice import flow, task\n@task\ndef t(): pass\n@flow\ndef f(): t()\nf()"
    )
    for heavy in ("boto3", "botocore", "httpx", "rich", "typer"):
        assert heavy not in loaded, heavy


def test_import_prints_nothing():
    out = subprocess.run([sys.executable, "-c", "import sluice, sluice.models"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "" and out.stderr == ""
