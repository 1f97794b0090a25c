"""The Fargate pool's shared names and default image recipe: what the CDK construct writes is
what the dispatcher reads, and the image's entry point is the CLI command that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from sluice.cli import app
from sluice_worker.fargate_settings import FargateDispatchSettings, dispatcher_environment

RECIPE = Path(__file__).parents[2] / "worker" / "deploy" / "fargate" / "Dockerfile"


def test_the_environment_the_construct_writes_is_what_the_dispatcher_reads(monkeypatch):
    # Given the dispatcher function's environment, as the construct builds it
    env = dispatcher_environment(pool="etl", cluster="sluice", task_definition="arn:td/etl:3",
                                 subnets=["subnet-a", "subnet-b"], security_groups=["sg-1"],
                                 assign_public_ip=True, capacity_provider="FARGATE_SPOT")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # When the dispatcher reads its settings, Then it gets every value back
    settings = FargateDispatchSettings()
    assert (settings.pool, settings.cluster, settings.task_definition) == (
        "etl", "sluice", "arn:td/etl:3")
    assert settings.subnet_ids == ["subnet-a", "subnet-b"]
    assert settings.security_group_ids == ["sg-1"]
    assert settings.assign_public_ip and settings.capacity_provider == "FARGATE_SPOT"
    assert settings.container_name == "sluice"


def test_the_image_runs_the_run_one_command_of_the_worker_extra():
    recipe = RECIPE.read_text()
    # The base image the issue names, the worker extra, never the unrelated "sluice" project
    assert re.search(r"^FROM python:3\.13-slim$", recipe, re.MULTILINE)
    assert "[worker]" in recipe
    assert not re.search(r"pip install [\"']?sluice[\[=\" ]", recipe)
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", recipe, re.MULTILINE)
    command = json.loads(entrypoint)
    assert command[0] == "sluice"
    # and that command exists in the CLI
    assert CliRunner().invoke(app, [*command[1:], "--help"]).exit_code == 0
