"""`from sluice import flow, task` stays light (issue 20): the option models, and pydantic with
them, load on the first decoration, which still validates every option there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sluice import flow, task
from sluice.exceptions import ConfigurationError

#: What importing `flow` and `task` must not load: pydantic (the option models come with the
#: first decoration) and the client, CLI and AWS libraries.
NOT_ON_IMPORT = ("pydantic", "pydantic_core", "pydantic_settings", "httpx", "rich", "typer",
                 "boto3", "botocore", "sluice.flow_options", "sluice.task_options")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_flow_and_task_loads_no_pydantic_and_no_client():
    # Given a fresh interpreter, When it imports flow and task
    loaded = _modules_after("from sluice import flow, task")
    # Then neither pydantic nor any client, CLI or AWS library is imported
    assert loaded & set(NOT_ON_IMPORT) == set()


def test_the_first_decoration_builds_the_option_models():
    # Given a fresh interpreter, When it defines a task and a flow
    loaded = _modules_after("from sluice import flow, task\n@task\ndef t(): pass\n"
                            "@flow\ndef f(): t()")
    # Then the option models were imported to validate them (and still no client library)
    assert {"sluice.flow_options", "sluice.task_options", "pydantic"} <= loaded
    assert loaded & {"httpx", "rich", "typer", "boto3"} == set()


def test_a_bad_option_still_raises_when_the_decorator_is_applied():
    # When a flow and a task are given a wrong option, Then the decorator call itself raises,
    # naming the option and a correct example
    with pytest.raises(ConfigurationError, match=r"option `retries`.*for example @flow"):
        flow(retries="twice")
    with pytest.raises(ConfigurationError, match=r"`retires` is not an option of @task"):
        task(retires=3)


def test_the_option_models_are_still_reachable_from_flows_and_tasks():
    # The models moved to their own modules; their old addresses still resolve
    from sluice.flow_options import FlowOptions
    from sluice.flows import FlowOptions as FromFlows
    from sluice.task_options import TaskOptions
    from sluice.tasks import TaskOptions as FromTasks

    assert FromFlows is FlowOptions and FromTasks is TaskOptions
    assert flow(name="etl")(lambda: None).options.name == "etl"
    with pytest.raises(AttributeError, match="NoSuchName"):
        import sluice.flows

        sluice.flows.NoSuchName  # noqa: B018
