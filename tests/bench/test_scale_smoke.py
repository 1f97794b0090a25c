"""bench/scale.py's simulation core at toy size: the simulated workers complete runs against both
control planes (the API Lambda handler on moto, the embedded server over HTTP), nothing is
falsely crashed, the counts and units are there; and a worker that stops beating *is* counted,
so the false-crash figure can fail. No timings are asserted (the bench prints them)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch) -> Iterator[dict[str, ModuleType]]:
    """The bench modules, imported from bench/ and forgotten afterwards (no leak to other tests)."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(BENCH))
    import doc_sections
    import scale
    import scale_sim
    import scale_targets

    yield {"sim": scale_sim, "targets": scale_targets, "scale": scale, "docs": doc_sections}
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and \
                str(BENCH) in str(sys.modules[name].__file__):
            del sys.modules[name]


def toy(sim: ModuleType, heartbeat: str, **changes) -> object:
    # 2 simulated minutes: past one 90 s lease + its margin, so a missed renewal would crash.
    terms = {"runs": 6, "workers": 2, "limit": 3, "minutes": 2, "run_minutes": 1,
             "events_every": 20, "heartbeat": heartbeat}
    return sim.Scenario(**{**terms, **changes})


@pytest.mark.parametrize("heartbeat", ["run", "worker"])
def test_runs_complete_on_the_lambda_handler_without_false_crashes(bench, heartbeat):
    sim, targets, scale = bench["sim"], bench["targets"], bench["scale"]
    # Given the API handler over the AWS adapters on moto, on a simulated clock
    clock = sim.SimClock()
    with targets.aws_target(clock) as target:
        if heartbeat == "worker" and not target.has_worker_heartbeat():
            pytest.skip("no per-worker heartbeat route on this control plane")
        # When 6 runs on 2 workers are simulated for 2 minutes
        outcome = sim.simulate(target, toy(sim, heartbeat))
    # Then runs finished and were replaced, nothing was crashed, every family was counted
    assert outcome.runs_completed > 0 and outcome.runs_started == outcome.runs_completed
    assert outcome.false_crashes == 0, outcome.false_crash_reasons
    beats = outcome.families[f"heartbeat ({heartbeat})"]
    assert beats.calls > 0 and beats.usage["dynamodb_wru"] > 0
    assert outcome.families["events"].usage["dynamodb.PutItem"] > 0
    assert outcome.families["monitor tick"].calls == 2
    figures = scale.figures_of(outcome, priced=True)
    assert figures["api_requests_per_s"] > 0 and figures["monthly_cost"]["total"] > 0


@pytest.mark.parametrize("heartbeat", ["run", "worker"])
def test_runs_complete_on_the_embedded_server_without_false_crashes(bench, heartbeat):
    sim, targets = bench["sim"], bench["targets"]
    # Given the embedded server over HTTP, on a simulated clock
    clock = sim.SimClock()
    with targets.embedded_target(clock) as target:
        if heartbeat == "worker" and not target.has_worker_heartbeat():
            pytest.skip("no per-worker heartbeat route on this control plane")
        # When simulated
        outcome = sim.simulate(target, toy(sim, heartbeat))
    # Then
    assert outcome.runs_completed > 0
    assert outcome.false_crashes == 0, outcome.false_crash_reasons
    assert outcome.families[f"heartbeat ({heartbeat})"].calls > 0


def test_a_worker_that_stops_beating_is_counted_as_crashed(bench):
    sim, targets = bench["sim"], bench["targets"]

    class SilentWorkers(sim.Simulation):
        def _on_run_beat(self, run_id, at):  # noqa: ANN001 - the workers never renew
            return None

    # Given workers that never heartbeat, on runs longer than the simulated period
    clock = sim.SimClock()
    with targets.embedded_target(clock) as target:
        outcome = SilentWorkers(target, toy(sim, "run", run_minutes=10)).run()
    # Then the monitor crashes them after the lease and its margin, and the bench counts it
    assert outcome.false_crashes > 0
    assert outcome.false_crash_reasons["monitor"] > 0


def test_extrapolation_scales_per_run_and_per_worker_families_apart(bench):
    sim, scale = bench["sim"], bench["scale"]
    # Given a measured outcome of 100 runs on 5 workers
    measured = sim.Outcome(sim.Scenario(100, 5, 20), "t", 60.0,
                           {name: sim.Family() for name in (*sim.FAMILIES, *sim.TICKS)})
    measured.families["heartbeat (run)"] = sim.Family(200, [1.0], {"dynamodb_wru": 600})
    measured.families["presence"] = sim.Family(10, [1.0], {"dynamodb_wru": 10})
    measured.families["monitor tick"] = sim.Family(1, [1.0], {"dynamodb_rru": 50})
    # When scaled to 1,000 runs on 50 workers
    scaled = scale.extrapolate(measured, 1000, 50, 20)
    # Then per-run calls x10, per-worker calls x10 (workers), the tick's reads x10, its calls x1
    assert scaled.families["heartbeat (run)"].calls == 2000
    assert scaled.families["heartbeat (run)"].usage["dynamodb_wru"] == 6000
    assert scaled.families["presence"].calls == 100
    assert scaled.families["monitor tick"].calls == 1
    assert scaled.families["monitor tick"].usage["dynamodb_rru"] == 500


def test_the_scale_section_is_replaced_in_place_and_kept_by_the_cost_model(bench):
    docs = bench["docs"]
    begin, end = docs.markers("bench/scale.py")
    # Given a generated page without the section
    page = "# Cost\n\n## Summary\n\n## Free tiers (not counted above)\n\nfree\n"
    # When the section is added, then replaced
    first = docs.splice(page, "bench/scale.py", f"{begin}\nold\n{end}",
                        before="## Free tiers (not counted above)")
    second = docs.splice(first, "bench/scale.py", f"{begin}\nnew\n{end}",
                         before="## Free tiers (not counted above)")
    # Then it sits before "Free tiers", once, with the new text
    assert second.index("new") < second.index("## Free tiers")
    assert "old" not in second and second.count(begin) == 1
    assert docs.extract(second, "bench/scale.py") == f"{begin}\nnew\n{end}"
