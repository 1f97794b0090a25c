"""Importing the SDK for flows and tasks loads no API models, and `sluice.models` still
exports every name it lists (they are imported on first use)."""

from __future__ import annotations

import json
import subprocess
import sys

import sluice.models

#: Model modules a flow definition does not need (the API's request and answer models).
HEAVY_MODEL_MODULES = {"sluice.models.api", "sluice.models.automations",
                       "sluice.models.deployments", "sluice.models.runs",
                       "sluice.models.states", "sluice.models.worker_leases",
                       "sluice.models.sluice_events", "sluice.models.event_requests"}


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_from_sluice_import_flow_task_loads_no_api_models():
    # Given a fresh interpreter, When it imports flow and task
    loaded = _modules_after("from sluice import flow, task")
    # Then none of the API model modules (nor pydantic-settings) were imported
    assert loaded & HEAVY_MODEL_MODULES == set()
    assert "pydantic_settings" not in loaded


def test_import_sluice_imports_no_submodule():
    loaded = _modules_after("import sluice")
    assert {name for name in loaded if name.startswith("sluice.")} == set()
    assert "pydantic" not in loaded


def test_every_listed_model_name_resolves_from_its_submodule():
    for name in sluice.models.__all__:
        value = getattr(sluice.models, name)
        assert value is not None, name
    assert sluice.models.MAX_TAG_CHARS == 128
    assert sluice.models.EmitEventsRequest.__module__ == "sluice.models.event_requests"


def test_an_unknown_model_name_is_an_attribute_error():
    try:
        sluice.models.NoSuchModel  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchModel" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
