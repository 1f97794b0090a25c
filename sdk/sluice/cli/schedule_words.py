"""Deployments in words: moved to `sluice.schedule_words` so the control plane (the console's
`GET /stats/deployments`) describes schedules with the same words as the CLI. Re-exported here
so existing imports keep working."""

from __future__ import annotations

from ..schedule_words import (  # noqa: F401 - re-exports
    describe_cron,
    describe_interval,
    describe_parameters,
    describe_schedule,
    describe_source,
)
