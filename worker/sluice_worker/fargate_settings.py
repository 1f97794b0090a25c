"""The names a Fargate pool's parts share: the dispatcher function's settings (set by the CDK
construct `FargatePool`, read by `fargate_dispatch`) and the environment a run's task gets (set
by the dispatcher in RunTask's container overrides, read by `sluice worker run-one`).

Only pydantic-settings here: the CDK app imports this module to name the same variables.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The run a Fargate task runs, its lease (from the dispatcher's claim), its pool and the
#: attempt the run's queue message named: container overrides of each task.
ENV_FLOW_RUN_ID = "SLUICE_FLOW_RUN_ID"
ENV_LEASE = "SLUICE_LEASE"
ENV_POOL = "SLUICE_POOL"
ENV_ATTEMPT = "SLUICE_ATTEMPT"

#: The container of the pool's task definition that runs `sluice worker run-one`.
DEFAULT_CONTAINER_NAME = "sluice"

#: Prefix of the dispatcher's own settings (`FargateDispatchSettings`).
DISPATCH_ENV_PREFIX = "SLUICE_FARGATE_"


class FargateDispatchSettings(BaseSettings):
    """What the dispatcher of one Fargate pool needs to start a run's task. Environment:
    `SLUICE_POOL` and `SLUICE_FARGATE_<FIELD>` (lists comma-separated); the construct writes
    them with `dispatcher_environment`."""

    model_config = SettingsConfigDict(env_prefix=DISPATCH_ENV_PREFIX, extra="ignore",
                                      populate_by_name=True)

    pool: str = Field(validation_alias=AliasChoices(ENV_POOL, "pool"),
                      description="The Fargate pool whose queue drives this dispatcher.")
    cluster: str = Field(description="ECS cluster name or ARN the tasks run in.")
    task_definition: str = Field(
        description="The pool's task definition (family, family:revision or ARN), registered "
        "once by the construct; the dispatcher never registers one.")
    subnets: str = Field(description="Comma-separated subnet ids of the tasks (awsvpc).")
    security_groups: str = Field(default="", description="Comma-separated security group ids.")
    assign_public_ip: bool = Field(
        default=False, description="Give tasks a public IP (public subnets without a NAT).")
    container_name: str = Field(default=DEFAULT_CONTAINER_NAME,
                                description="The task definition's container running sluice.")
    capacity_provider: str | None = Field(
        default=None, description="FARGATE_SPOT or FARGATE as capacity provider strategy "
        "instead of the FARGATE launch type (unset: launch type FARGATE).")

    @property
    def subnet_ids(self) -> list[str]:
        return _split(self.subnets)

    @property
    def security_group_ids(self) -> list[str]:
        return _split(self.security_groups)


def dispatcher_environment(*, pool: str, cluster: str, task_definition: str,
                           subnets: Sequence[str], security_groups: Sequence[str] = (),
                           assign_public_ip: bool = False,
                           container_name: str = DEFAULT_CONTAINER_NAME,
                           capacity_provider: str | None = None) -> dict[str, str]:
    """The dispatcher function's environment for `FargateDispatchSettings` (CDK tokens welcome:
    lists are joined as strings)."""
    env = {
        ENV_POOL: pool,
        f"{DISPATCH_ENV_PREFIX}CLUSTER": cluster,
        f"{DISPATCH_ENV_PREFIX}TASK_DEFINITION": task_definition,
        f"{DISPATCH_ENV_PREFIX}SUBNETS": ",".join(subnets),
        f"{DISPATCH_ENV_PREFIX}SECURITY_GROUPS": ",".join(security_groups),
        f"{DISPATCH_ENV_PREFIX}ASSIGN_PUBLIC_IP": "true" if assign_public_ip else "false",
        f"{DISPATCH_ENV_PREFIX}CONTAINER_NAME": container_name,
    }
    if capacity_provider:
        env[f"{DISPATCH_ENV_PREFIX}CAPACITY_PROVIDER"] = capacity_provider
    return env


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
