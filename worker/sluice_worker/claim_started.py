"""The flow process of a run its worker's claim already started (issue 20).

A claim with `start` writes Running in the claim's own conditional write, under the new lease;
the worker hands the claimed run to the flow process in its environment. The process then needs
neither a request to read its run nor one to report the Running its engine proposes first.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sluice.client.reporter import HttpReporter
from sluice.models import FlowRun, State, StateType

from .execute import ENV_FLOW_RUN  # the claimed run (JSON, as the claim answered it)

__all__ = ["ENV_FLOW_RUN", "ClaimStartedReporter", "claimed_flow_run", "reporter_for"]


def claimed_flow_run(flow_run_id: str) -> FlowRun | None:
    """The run the worker claimed for this process, or None (an older worker, a run too large
    for the environment, or not this run): then the process reads it from the control plane."""
    text = os.environ.get(ENV_FLOW_RUN)
    if not text:
        return None
    try:
        run = FlowRun.model_validate(json.loads(text))
    except ValueError:
        return None
    return run if run.id == flow_run_id else None


class ClaimStartedReporter(HttpReporter):
    """An `HttpReporter` that knows the claim already made the first attempt Running: the
    engine's first Running of that run is answered with the stored state, without a request.
    Every other transition (in-process retries' Running included) goes to the control plane."""

    def __init__(self, client: Any, started: FlowRun) -> None:
        super().__init__(client)
        self._started: dict[str, State] = {started.id: started.state}

    def set_flow_run_state(self, flow_run: FlowRun, state: State, transition_id: str) -> State:
        stored = self._started.pop(flow_run.id, None)
        if stored is not None and state.type is StateType.RUNNING:
            return stored
        return super().set_flow_run_state(flow_run, state, transition_id)


def reporter_for(client: Any, flow_run: FlowRun, *, from_claim: bool) -> HttpReporter:
    """The flow process's reporter: one that skips the first Running when the claim started
    the run (the run handed over by the worker is Running), a plain one otherwise."""
    if from_claim and flow_run.state.type is StateType.RUNNING:
        return ClaimStartedReporter(client, flow_run)
    return HttpReporter(client)
