"""The `RunStore` contract (functions/sluice_functions/ports.py), run against every adapter."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from contract_support import (
    BASE_TIME,
    at,
    bad_cursors,
    deployment,
    drain_pages,
    flow_run,
    hourly_schedule,
    items_of,
    new_id,
    run_concurrently,
    state,
    task_run,
)

from sluice.exceptions import BadRequest, Conflict, NotFound
from sluice.models import FlowRun, Pool, StateType, Worker
from sluice_functions.ports import FlowRunFilter, ReceivedJson, RunStore

CONCURRENT_WRITERS = 8
MOTO_TRANSACTIONS_GAP = (
    "moto's DynamoDB writes are not thread-safe: a cancelled transaction restores a copy of the"
    " whole table, undoing other threads' writes"
)


def test_the_adapter_implements_the_port(run_store):
    assert isinstance(run_store, RunStore)


# ---- creating and reading flow runs ------------------------------------------------------------


def test_a_created_run_round_trips_every_field_at_version_1(run_store):
    # Given a run that sets every field, the ones the service adds later included
    run = flow_run(
        name="brave-otter",
        deployment_id="dep-1",
        parameters={"date": "2031-03-14", "nested": {"rows": [1, 2, 3]}, "ratio": 0.5},
        tags=["nightly", "team:data"],
        start_time=at(1.25),
        retries=3,
        retry_delay_seconds=7.5,
        idempotency_key="schedule:dep-1:2031-03-14T12:00:00Z",
        created_by="arn:aws:iam::123456789012:user/alice",
        created=at(-60),
        updated=at(-60),
        worker="worker-1",
        heartbeat_at=at(2.000001),
        lease="lease-abc",
        enqueued_at=at(-30.5),
        run_count=2,
    )

    # When it is created
    created = run_store.create_flow_run(run)

    # Then the store holds it as given, at version 1, in UTC
    expected = run.model_copy(update={"version": 1})
    assert created == expected
    assert run_store.get_flow_run(run.id) == expected
    assert created.scheduled_at.utcoffset() == timedelta(0)
    assert created.heartbeat_at == at(2.000001)
    # and its creation state is the first history entry
    assert run_store.list_state_history(run.id) == [run.state]


def test_the_store_never_returns_the_callers_instances(run_store):
    # Given a created run
    run = flow_run(tags=["a"])
    created = run_store.create_flow_run(run)

    # When the caller mutates both its own instance and the returned one
    assert created is not run
    run.tags.append("from-caller")
    created.tags.append("from-result")

    # Then the stored run is untouched
    assert run_store.get_flow_run(run.id).tags == ["a"]


def test_an_unknown_run_is_not_found(run_store):
    with pytest.raises(NotFound):
        run_store.get_flow_run("fr-missing")
    assert run_store.get_flow_run_by_idempotency_key("no-such-key") is None
    assert run_store.list_state_history("fr-missing") == []


def test_creating_a_run_with_an_existing_id_conflicts_and_writes_nothing(run_store):
    # Given a stored run
    original = run_store.create_flow_run(flow_run(flow_name="first"))

    # When another run with the same id is created
    with pytest.raises(Conflict):
        run_store.create_flow_run(flow_run(id=original.id, flow_name="second"))

    # Then the stored run and its history are unchanged
    assert run_store.get_flow_run(original.id) == original
    assert len(run_store.list_state_history(original.id)) == 1


def test_an_idempotency_key_is_held_by_one_run_only(run_store):
    # Given a run created with an idempotency key
    first = run_store.create_flow_run(flow_run(idempotency_key="key-1"))

    # When a second run with the same key is created
    second = flow_run(idempotency_key="key-1")
    with pytest.raises(Conflict):
        run_store.create_flow_run(second)

    # Then nothing of the second run was written, and the key still finds the first
    with pytest.raises(NotFound):
        run_store.get_flow_run(second.id)
    assert run_store.list_state_history(second.id) == []
    assert run_store.get_flow_run_by_idempotency_key("key-1") == first
    # and runs without a key never clash with each other
    run_store.create_flow_run(flow_run())
    run_store.create_flow_run(flow_run())


@pytest.mark.moto_gap(MOTO_TRANSACTIONS_GAP)
def test_concurrent_creates_with_one_idempotency_key_create_one_run(run_store):
    # When eight threads create different runs holding the same key at once
    runs = [flow_run(idempotency_key="once") for _ in range(CONCURRENT_WRITERS)]
    outcomes = run_concurrently(lambda i: run_store.create_flow_run(runs[i]), CONCURRENT_WRITERS)

    # Then exactly one wins and the others get Conflict
    assert len(outcomes.results) == 1
    assert len(outcomes.errors) == CONCURRENT_WRITERS - 1
    assert all(isinstance(error, Conflict) for error in outcomes.errors)
    assert run_store.get_flow_run_by_idempotency_key("once") == outcomes.results[0]


# ---- compare-and-set writes --------------------------------------------------------------------


def test_update_bumps_the_version_and_appends_no_history(run_store):
    # Given a stored run
    created = run_store.create_flow_run(flow_run())

    # When it is updated with the version it was read at
    updated = run_store.update_flow_run(
        created.model_copy(update={"heartbeat_at": at(5), "worker": "w-1", "enqueued_at": at(4)})
    )

    # Then the fields are replaced, the version moved on, and the history did not grow
    assert updated.version == 2
    assert (updated.heartbeat_at, updated.worker, updated.enqueued_at) == (at(5), "w-1", at(4))
    assert run_store.get_flow_run(created.id) == updated
    assert len(run_store.list_state_history(created.id)) == 1


def test_update_with_a_stale_version_conflicts_and_writes_nothing(run_store):
    # Given a run updated once since it was read
    created = run_store.create_flow_run(flow_run())
    current = run_store.update_flow_run(created.model_copy(update={"worker": "w-1"}))

    # When a writer still holding the first read updates it
    with pytest.raises(Conflict):
        run_store.update_flow_run(created.model_copy(update={"worker": "w-stale"}))

    # Then the newer write stands
    assert run_store.get_flow_run(created.id) == current


def test_update_of_an_unknown_run_is_not_found(run_store):
    with pytest.raises(NotFound):
        run_store.update_flow_run(flow_run(version=1))


def test_set_state_writes_the_run_its_history_and_its_transition_id(run_store):
    # Given a Scheduled run
    created = run_store.create_flow_run(flow_run())

    # When it moves to Pending then Running
    pending = run_store.set_flow_run_state(
        created.model_copy(update={"state": state(StateType.PENDING), "lease": "l-1"}), "t-1"
    )
    running = run_store.set_flow_run_state(
        pending.model_copy(update={"state": state(StateType.RUNNING), "start_time": at(3)}), "t-2"
    )

    # Then each write bumped the version and the history lists every state, oldest first
    assert (pending.version, running.version) == (2, 3)
    assert running.lease == "l-1" and running.start_time == at(3)
    assert run_store.get_flow_run(created.id) == running
    assert [s.type for s in run_store.list_state_history(created.id)] == [
        StateType.SCHEDULED,
        StateType.PENDING,
        StateType.RUNNING,
    ]
    assert run_store.list_state_history(created.id)[-1] == running.state
    assert run_store.has_transition(created.id, "t-1")
    assert run_store.has_transition(created.id, "t-2")
    assert not run_store.has_transition(created.id, "t-3")


def test_a_repeated_transition_id_conflicts_and_writes_nothing(run_store):
    # Given a run that accepted transition t-1
    created = run_store.create_flow_run(flow_run())
    pending = run_store.set_flow_run_state(
        created.model_copy(update={"state": state(StateType.PENDING)}), "t-1"
    )

    # When t-1 is written again, even with the current version
    with pytest.raises(Conflict):
        run_store.set_flow_run_state(
            pending.model_copy(update={"state": state(StateType.RUNNING)}), "t-1"
        )

    # Then neither the run nor its history changed
    assert run_store.get_flow_run(created.id) == pending
    assert len(run_store.list_state_history(created.id)) == 2


def test_a_stale_state_write_records_neither_state_nor_transition_id(run_store):
    # Given a run whose version moved on after a writer read it
    created = run_store.create_flow_run(flow_run())
    current = run_store.update_flow_run(created.model_copy(update={"worker": "w-1"}))

    # When the stale writer sets a state with a fresh transition id
    with pytest.raises(Conflict):
        run_store.set_flow_run_state(
            created.model_copy(update={"state": state(StateType.PENDING)}), "t-stale"
        )

    # Then the write left no trace: run, history and transition id are as before
    assert run_store.get_flow_run(created.id) == current
    assert len(run_store.list_state_history(created.id)) == 1
    assert not run_store.has_transition(created.id, "t-stale")
    # and the same transition id can still be applied by a writer with the current version
    applied = run_store.set_flow_run_state(
        current.model_copy(update={"state": state(StateType.PENDING)}), "t-stale"
    )
    assert applied.version == current.version + 1


def test_transition_ids_are_scoped_to_their_run(run_store):
    # Given two runs
    first = run_store.create_flow_run(flow_run())
    second = run_store.create_flow_run(flow_run())

    # When both accept a transition with the same id
    run_store.set_flow_run_state(first.model_copy(update={"state": state(StateType.PENDING)}), "t")
    run_store.set_flow_run_state(second.model_copy(update={"state": state(StateType.PENDING)}), "t")

    # Then each recorded it
    assert run_store.has_transition(first.id, "t") and run_store.has_transition(second.id, "t")


def test_state_writes_without_a_transition_id_are_never_deduplicated(run_store):
    run = run_store.create_flow_run(flow_run())
    for _ in range(3):
        run = run_store.set_flow_run_state(
            run.model_copy(update={"state": state(StateType.SCHEDULED, "Late")}), None
        )
    assert run.version == 4
    assert [s.name for s in run_store.list_state_history(run.id)] == ["Scheduled"] + ["Late"] * 3


def test_set_state_of_an_unknown_run_is_not_found(run_store):
    with pytest.raises(NotFound):
        run_store.set_flow_run_state(flow_run(version=1), "t-1")


@pytest.mark.moto_gap(MOTO_TRANSACTIONS_GAP)
@pytest.mark.parametrize("write", ["update", "set_state"])
def test_concurrent_writers_of_one_version_have_exactly_one_winner(run_store, write):
    # Given a run that eight writers read at the same version, round after round
    run = run_store.create_flow_run(flow_run())
    rounds = 4
    for round_number in range(rounds):
        read = run_store.get_flow_run(run.id)

        def compete(i: int, read: FlowRun = read, round_number: int = round_number) -> FlowRun:
            if write == "update":
                return run_store.update_flow_run(read.model_copy(update={"worker": f"w-{i}"}))
            proposal = read.model_copy(
                update={"state": state(StateType.RUNNING), "worker": f"w-{i}"}
            )
            return run_store.set_flow_run_state(proposal, f"round-{round_number}-writer-{i}")

        # When they all write at once
        outcomes = run_concurrently(compete, CONCURRENT_WRITERS)

        # Then exactly one wins, the others lose with Conflict, and the winner's write is stored
        assert len(outcomes.results) == 1, outcomes.errors
        assert all(isinstance(error, Conflict) for error in outcomes.errors)
        winner = outcomes.results[0]
        assert winner.version == read.version + 1
        assert run_store.get_flow_run(run.id) == winner

    history = run_store.list_state_history(run.id)
    assert len(history) == (1 + rounds if write == "set_state" else 1)


# ---- listing flow runs -------------------------------------------------------------------------


def _store_runs(run_store, *runs: FlowRun) -> list[FlowRun]:
    return [run_store.create_flow_run(run) for run in runs]


def _ids(runs) -> list[str]:
    return [run.id for run in runs]


def _all_runs(run_store, flt: FlowRunFilter, limit: int = 50) -> list[FlowRun]:
    pages = drain_pages(lambda cursor: run_store.list_flow_runs(flt, limit=limit, cursor=cursor))
    return items_of(pages)


def test_runs_are_listed_newest_first_with_ties_broken_by_id_descending(run_store):
    # Given runs scheduled at whole and fractional seconds, two of them at the same instant
    runs = _store_runs(
        run_store,
        flow_run(id="fr-c", scheduled_at=at(1)),
        flow_run(id="fr-a", scheduled_at=at(1.5)),
        flow_run(id="fr-b", scheduled_at=at(1.5)),
        flow_run(id="fr-d", scheduled_at=at(0.000001)),
        flow_run(id="fr-e", scheduled_at=at(2)),
    )

    # When all runs are listed
    listed = _all_runs(run_store, FlowRunFilter())

    # Then they come by scheduled_at descending, ids descending within one instant
    assert _ids(listed) == ["fr-e", "fr-b", "fr-a", "fr-c", "fr-d"]
    assert sorted(_ids(listed)) == sorted(_ids(runs))


def test_list_filters_by_flow_deployment_pool_and_state_types(run_store):
    # Given runs differing in one attribute each
    base = flow_run(id="fr-base", flow_name="etl", deployment_id="dep-1", pool="default")
    _store_runs(
        run_store,
        base,
        flow_run(id="fr-other-flow", flow_name="report", deployment_id="dep-1"),
        flow_run(id="fr-other-dep", deployment_id="dep-2"),
        flow_run(id="fr-other-pool", deployment_id="dep-1", pool="gpu"),
        flow_run(id="fr-running", deployment_id="dep-1", state=state(StateType.RUNNING)),
        flow_run(id="fr-failed", deployment_id="dep-1", state=state(StateType.FAILED)),
    )

    def listed(**fields) -> set[str]:
        return set(_ids(_all_runs(run_store, FlowRunFilter(**fields))))

    # Then each filter keeps exactly the matching runs, and filters combine with AND
    assert listed(flow_name="report") == {"fr-other-flow"}
    assert listed(deployment_id="dep-2") == {"fr-other-dep"}
    assert listed(pool="gpu") == {"fr-other-pool"}
    assert listed(state_types=frozenset({StateType.RUNNING, StateType.FAILED})) == {
        "fr-running",
        "fr-failed",
    }
    assert len(listed(state_types=frozenset())) == 6
    assert listed(
        flow_name="etl", deployment_id="dep-1", pool="default",
        state_types=frozenset({StateType.SCHEDULED}),
    ) == {"fr-base"}


def test_the_scheduled_range_is_half_open(run_store):
    # Given runs at 0, 1, 2 and 3 seconds
    _store_runs(run_store, *(flow_run(id=f"fr-{s}", scheduled_at=at(s)) for s in range(4)))

    # When listing runs scheduled_after 1 s and before 3 s
    listed = _all_runs(run_store, FlowRunFilter(scheduled_after=at(1), scheduled_before=at(3)))

    # Then the lower bound is included and the upper bound excluded
    assert _ids(listed) == ["fr-2", "fr-1"]


def test_flow_run_pages_round_trip_their_cursors(run_store):
    # Given 23 runs of one flow (some sharing a scheduled time) among runs of another flow
    expected = _store_runs(
        run_store,
        *(flow_run(id=f"fr-{i:02d}", flow_name="etl", scheduled_at=at(i // 2)) for i in range(23)),
    )
    _store_runs(run_store, *(flow_run(flow_name="noise", scheduled_at=at(i)) for i in range(5)))
    flt = FlowRunFilter(flow_name="etl")

    # When they are read five at a time, following next_cursor
    pages = drain_pages(lambda cursor: run_store.list_flow_runs(flt, limit=5, cursor=cursor))

    # Then no page exceeds the limit and together they list every run once, in order
    assert all(len(page.items) <= 5 for page in pages)
    assert len(pages) >= 5
    newest_first = sorted(expected, key=lambda r: (r.scheduled_at, r.id), reverse=True)
    assert _ids(items_of(pages)) == _ids(newest_first)


@pytest.mark.parametrize("cursor", list(bad_cursors()))
def test_a_flow_run_cursor_the_store_did_not_issue_is_a_bad_request(run_store, cursor):
    run_store.create_flow_run(flow_run())
    with pytest.raises(BadRequest):
        run_store.list_flow_runs(FlowRunFilter(), limit=10, cursor=cursor)
    with pytest.raises(BadRequest):
        run_store.list_flow_runs_by_state(StateType.SCHEDULED, limit=10, cursor=cursor)


def test_runs_by_state_come_oldest_first_and_follow_state_changes(run_store):
    # Given Scheduled runs (two at one instant) and a Running one
    _store_runs(
        run_store,
        flow_run(id="fr-b", scheduled_at=at(1)),
        flow_run(id="fr-a", scheduled_at=at(1)),
        flow_run(id="fr-early", scheduled_at=at(0.5)),
        flow_run(id="fr-late", scheduled_at=at(9)),
        flow_run(id="fr-running", scheduled_at=at(0), state=state(StateType.RUNNING)),
    )

    def by_state(state_type, before=None, limit=50) -> list[str]:
        pages = drain_pages(
            lambda cursor: run_store.list_flow_runs_by_state(
                state_type, scheduled_before=before, limit=limit, cursor=cursor
            )
        )
        assert all(len(page.items) <= limit for page in pages)
        return _ids(items_of(pages))

    # Then Scheduled runs come by scheduled_at ascending, ids ascending within one instant
    assert by_state(StateType.SCHEDULED) == ["fr-early", "fr-a", "fr-b", "fr-late"]
    assert by_state(StateType.SCHEDULED, limit=1) == ["fr-early", "fr-a", "fr-b", "fr-late"]
    # and scheduled_before is exclusive
    assert by_state(StateType.SCHEDULED, before=at(1)) == ["fr-early"]
    assert by_state(StateType.RUNNING) == ["fr-running"]

    # When a Scheduled run starts running
    run = run_store.get_flow_run("fr-a")
    run_store.set_flow_run_state(run.model_copy(update={"state": state(StateType.RUNNING)}), "t")

    # Then it leaves one list and joins the other
    assert by_state(StateType.SCHEDULED) == ["fr-early", "fr-b", "fr-late"]
    assert by_state(StateType.RUNNING) == ["fr-running", "fr-a"]
    assert by_state(StateType.COMPLETED) == []


def test_runs_are_counted_with_the_same_filters(run_store):
    _store_runs(
        run_store,
        flow_run(pool="default", state=state(StateType.RUNNING)),
        flow_run(pool="default", state=state(StateType.RUNNING), deployment_id="dep-1"),
        flow_run(pool="default", state=state(StateType.PENDING)),
        flow_run(pool="gpu", state=state(StateType.RUNNING)),
        flow_run(pool="default", scheduled_at=at(60)),
    )
    active = frozenset({StateType.PENDING, StateType.RUNNING})
    assert run_store.count_flow_runs(FlowRunFilter()) == 5
    assert run_store.count_flow_runs(FlowRunFilter(pool="default", state_types=active)) == 3
    assert run_store.count_flow_runs(FlowRunFilter(deployment_id="dep-1")) == 1
    assert run_store.count_flow_runs(FlowRunFilter(scheduled_after=at(30))) == 1
    assert run_store.count_flow_runs(FlowRunFilter(flow_name="none")) == 0
    # What concurrency limits count: the active runs admitted under a deployment's or pool's
    held = {"slot_scopes": ("deployment", "pool")}
    _store_runs(
        run_store,
        flow_run(pool="default", deployment_id="dep-1", state=state(StateType.RUNNING), **held),
        flow_run(pool="default", deployment_id="dep-2", state=state(StateType.PENDING),
                 slot_scopes=("pool",)),
        flow_run(pool="default", deployment_id="dep-1", state=state(StateType.COMPLETED), **held),
    )
    assert run_store.count_flow_runs(FlowRunFilter.slot_holders(pool="default")) == 2
    assert run_store.count_flow_runs(FlowRunFilter.slot_holders(deployment_id="dep-1")) == 1
    assert run_store.count_flow_runs(FlowRunFilter.slot_holders(deployment_id="dep-2")) == 0
    assert run_store.count_flow_runs(FlowRunFilter.slot_holders(pool="gpu")) == 0
    # and a filter that adds to it still answers (without the exact shortcut)
    assert run_store.count_flow_runs(FlowRunFilter(
        pool="default", holds_slot_of="deployment")) == 2


def test_slot_holders_follow_every_state_change(run_store):
    # Given a deployment run whose claim was admitted under its deployment's limit
    run = run_store.create_flow_run(flow_run(pool="default", deployment_id="dep-1"))
    held = FlowRunFilter.slot_holders(deployment_id="dep-1")
    counts = []
    steps = [(StateType.PENDING, ("deployment",)), (StateType.RUNNING, None),
             (StateType.PAUSED, None), (StateType.RUNNING, None), (StateType.SCHEDULED, None),
             (StateType.RUNNING, None), (StateType.CANCELLING, None), (StateType.CANCELLED, None)]
    for step, (state_type, scopes) in enumerate(steps):
        # When it moves through active states, back to waiting, and to a final state
        update = {"state": state(state_type)} | ({"slot_scopes": scopes} if scopes else {})
        run = run_store.set_flow_run_state(run.model_copy(update=update), f"t{step}")
        counts.append(run_store.count_flow_runs(held))
    # Then it holds its slot exactly while active
    assert counts == [1, 1, 1, 1, 0, 1, 1, 0]
    assert run_store.count_flow_runs(FlowRunFilter.slot_holders(pool="default")) == 0


# ---- task runs ---------------------------------------------------------------------------------


def test_task_runs_are_idempotent_by_id_and_a_higher_version_wins(run_store):
    # Given three task runs stored at version 2
    flow_run_id = new_id("fr-")
    stored = [task_run(flow_run_id, id=f"tr-{i}", version=2) for i in range(3)]
    assert run_store.upsert_task_runs(stored) == 3

    # When the same batch is replayed, then one record comes newer, one older, one equal
    assert run_store.upsert_task_runs(stored) == 0
    newer = stored[0].model_copy(update={"version": 3, "state": state(StateType.COMPLETED)})
    older = stored[1].model_copy(update={"version": 1, "state": state(StateType.PENDING)})
    same_version = stored[2].model_copy(update={"state": state(StateType.FAILED)})
    written = run_store.upsert_task_runs([newer, older, same_version])

    # Then only the newer record was written
    assert written == 1
    listed = run_store.list_task_runs(flow_run_id, limit=10).items
    assert listed == [newer, stored[1], stored[2]]


def test_task_runs_given_with_their_received_json_are_stored_as_the_models(run_store):
    # Given task runs with the JSON text they were validated from (spaced, keys reordered)
    flow_run_id = new_id("fr-")
    runs = [task_run(flow_run_id, id=f"tr-{i}", version=2) for i in range(3)]
    texts = [json.dumps(json.loads(t.model_dump_json()), indent=1, sort_keys=True)
             for t in runs]
    received = ReceivedJson(zip(runs, texts))

    # When they are stored with it (plain and as first-time final records)
    assert run_store.upsert_task_runs(runs[:1], received) == 1
    assert run_store.add_finished_task_runs(runs[1:], received) == 2

    # Then they read back as the models, whichever form the store keeps
    assert run_store.list_task_runs(flow_run_id, limit=10).items == runs
    # And another model's text is never taken for a record
    assert received.get(runs[0].model_copy()) is None


def test_a_batch_may_mix_task_runs_of_several_flow_runs(run_store):
    first, second = new_id("fr-"), new_id("fr-")
    batch = [task_run(first, id="tr-1"), task_run(second, id="tr-2"), task_run(first, id="tr-3")]
    assert run_store.upsert_task_runs(batch) == 3
    assert [t.id for t in run_store.list_task_runs(first, limit=10).items] == ["tr-1", "tr-3"]
    assert [t.id for t in run_store.list_task_runs(second, limit=10).items] == ["tr-2"]


def test_task_run_pages_are_ordered_by_id_and_round_trip_their_cursors(run_store):
    # Given 17 task runs stored out of order
    flow_run_id = new_id("fr-")
    ids = [f"tr-{i:03d}" for i in range(17)]
    run_store.upsert_task_runs([task_run(flow_run_id, id=i) for i in reversed(ids)])

    # When they are read four at a time
    pages = drain_pages(
        lambda cursor: run_store.list_task_runs(flow_run_id, limit=4, cursor=cursor)
    )

    # Then every page fits the limit and together they hold every id once, ascending
    assert all(len(page.items) <= 4 for page in pages)
    assert [t.id for t in items_of(pages)] == ids


def test_task_runs_of_an_unknown_flow_run_are_an_empty_page(run_store):
    page = run_store.list_task_runs("fr-missing", limit=10)
    assert page.items == [] and page.next_cursor is None


@pytest.mark.parametrize("cursor", list(bad_cursors()))
def test_a_task_run_cursor_the_store_did_not_issue_is_a_bad_request(run_store, cursor):
    with pytest.raises(BadRequest):
        run_store.list_task_runs("fr-1", limit=10, cursor=cursor)


# ---- deployments -------------------------------------------------------------------------------


def test_a_new_deployment_is_stored_as_given(run_store):
    given = deployment(schedules=[hourly_schedule()], parameters={"full": False}, tags=["t"])
    stored = run_store.upsert_deployment(given)
    assert stored == given
    assert run_store.get_deployment(given.id) == given
    assert run_store.get_deployment_by_name("etl", "nightly") == given


def test_upserting_a_known_name_keeps_id_and_creation_and_replaces_the_rest(run_store):
    # Given a stored deployment
    original = run_store.upsert_deployment(deployment())

    # When the same (flow, name) is upserted with a new id, creation and configuration
    replacement = deployment(
        id=new_id("dep-"),
        created=at(3600),
        created_by="someone-else",
        updated=at(3600),
        entrypoint="flows/etl_v2.py:etl",
        schedules=[hourly_schedule()],
        paused=True,
        retries=2,
    )
    stored = run_store.upsert_deployment(replacement)

    # Then id, created and created_by stay, everything else is the replacement's
    expected = replacement.model_copy(
        update={"id": original.id, "created": original.created, "created_by": original.created_by}
    )
    assert stored == expected
    assert run_store.get_deployment(original.id) == expected
    with pytest.raises(NotFound):
        run_store.get_deployment(replacement.id)


@pytest.mark.moto_gap(MOTO_TRANSACTIONS_GAP)
def test_concurrent_upserts_of_one_name_leave_one_deployment(run_store):
    outcomes = run_concurrently(
        lambda i: run_store.upsert_deployment(deployment(description=f"writer {i}")),
        CONCURRENT_WRITERS,
    )
    assert outcomes.errors == []
    assert len({d.id for d in outcomes.results}) == 1
    assert [d.id for d in run_store.list_deployments(limit=10).items] == [outcomes.results[0].id]


def test_deployments_are_listed_by_flow_then_name_across_pages(run_store):
    # Given deployments of three flows, stored out of order
    names = [(flow, f"d{i}") for flow in ("b-flow", "a-flow", "c-flow") for i in (3, 1, 2)]
    for flow_name, name in names:
        run_store.upsert_deployment(deployment(flow_name, name))

    # When they are read two at a time, for all flows and for one
    every = drain_pages(lambda cursor: run_store.list_deployments(limit=2, cursor=cursor))
    of_b = drain_pages(
        lambda cursor: run_store.list_deployments(flow_name="b-flow", limit=2, cursor=cursor)
    )

    # Then pages fit the limit and list (flow_name, name) ascending
    assert all(len(page.items) <= 2 for page in every + of_b)
    assert [(d.flow_name, d.name) for d in items_of(every)] == sorted(names)
    assert [d.name for d in items_of(of_b)] == ["d1", "d2", "d3"]


@pytest.mark.parametrize("cursor", list(bad_cursors()))
def test_a_deployment_cursor_the_store_did_not_issue_is_a_bad_request(run_store, cursor):
    with pytest.raises(BadRequest):
        run_store.list_deployments(limit=10, cursor=cursor)


def test_update_replaces_a_deployment_by_id(run_store):
    stored = run_store.upsert_deployment(deployment())
    changed = stored.model_copy(update={"paused": True, "tags": ["x"], "updated": at(60)})
    assert run_store.update_deployment(changed) == changed
    assert run_store.get_deployment(stored.id) == changed
    with pytest.raises(NotFound):
        run_store.update_deployment(deployment(name="missing"))


def test_a_deployment_cannot_be_renamed_by_update(run_store):
    # Beyond ports.py's text ("its name pair must not change"): both adapters refuse a rename
    # with Conflict, and the stored deployment stays as it was.
    stored = run_store.upsert_deployment(deployment())
    with pytest.raises(Conflict):
        run_store.update_deployment(stored.model_copy(update={"name": "renamed"}))
    assert run_store.get_deployment(stored.id) == stored
    with pytest.raises(NotFound):
        run_store.get_deployment_by_name("etl", "renamed")


def test_a_new_deployment_cannot_take_an_id_used_by_another_name(run_store):
    # Beyond ports.py's text ("its id must be new"): both adapters answer Conflict.
    stored = run_store.upsert_deployment(deployment(name="first"))
    with pytest.raises(Conflict):
        run_store.upsert_deployment(deployment(name="second", id=stored.id))
    assert run_store.get_deployment(stored.id) == stored
    with pytest.raises(NotFound):
        run_store.get_deployment_by_name("etl", "second")


def test_deleting_a_deployment_frees_its_name_and_keeps_its_runs(run_store):
    # Given a deployment with a run
    stored = run_store.upsert_deployment(deployment())
    run = run_store.create_flow_run(flow_run(deployment_id=stored.id))

    # When it is deleted
    run_store.delete_deployment(stored.id)

    # Then it is gone by id, by name and from the list, but its run stays
    with pytest.raises(NotFound):
        run_store.get_deployment(stored.id)
    with pytest.raises(NotFound):
        run_store.get_deployment_by_name("etl", "nightly")
    assert run_store.list_deployments(limit=10).items == []
    assert run_store.get_flow_run(run.id).deployment_id == stored.id
    with pytest.raises(NotFound):
        run_store.delete_deployment(stored.id)
    # and its name can be taken by a new deployment with a new id
    recreated = run_store.upsert_deployment(deployment())
    assert recreated.id != stored.id
    assert run_store.get_deployment_by_name("etl", "nightly") == recreated


def test_unknown_deployments_are_not_found(run_store):
    with pytest.raises(NotFound):
        run_store.get_deployment("dep-missing")
    with pytest.raises(NotFound):
        run_store.get_deployment_by_name("etl", "missing")


# ---- pools and workers -------------------------------------------------------------------------


def test_a_pool_stores_its_configuration_only_and_keeps_its_creation_time(run_store):
    # Given a pool upserted with live fields filled in
    live = dict(queue_depth=4, dlq_depth=1, running=2, workers=[Worker(name="w", pool="gpu")])
    first = run_store.upsert_pool(
        Pool(name="gpu", concurrency_limit=2, description="GPUs", queue_url="q", dlq_url="d",
             created=BASE_TIME, **live)
    )

    # Then the live fields are not stored
    assert (first.queue_depth, first.dlq_depth, first.running) == (None, None, None)
    assert first.workers == []
    assert first.created == BASE_TIME and first.queue_url == "q" and first.dlq_url == "d"

    # When it is upserted again with another configuration and creation time
    second = run_store.upsert_pool(
        Pool(name="gpu", concurrency_limit=5, description=None, queue_url="q", dlq_url="d",
             created=at(3600))
    )

    # Then the configuration is replaced and the creation time kept
    assert second.concurrency_limit == 5 and second.description is None
    assert second.created == BASE_TIME
    assert run_store.get_pool("gpu") == second


def test_pools_are_listed_by_name_and_unknown_ones_are_not_found(run_store):
    for name in ("zeta", "alpha", "mid"):
        run_store.upsert_pool(Pool(name=name, created=BASE_TIME))
    assert [p.name for p in run_store.list_pools()] == ["alpha", "mid", "zeta"]
    with pytest.raises(NotFound):
        run_store.get_pool("missing")


def test_a_worker_seen_again_keeps_the_fields_it_did_not_send(run_store):
    # Given a worker first seen with all its fields
    run_store.upsert_worker(
        Worker(name="w-1", pool="gpu", host="ip-10-0-0-1", version="0.1.0", slots=4,
               last_seen=at(0), online=True)
    )

    # When it is seen again with only its last_seen
    seen = run_store.upsert_worker(Worker(name="w-1", pool="gpu", last_seen=at(30)))

    # Then the stored worker has the new time and the old other fields
    assert seen == Worker(name="w-1", pool="gpu", host="ip-10-0-0-1", version="0.1.0", slots=4,
                          last_seen=at(30), online=True)
    assert run_store.list_workers("gpu") == [seen]
    assert seen.last_seen.utcoffset() == timedelta(0)


def test_workers_are_listed_per_pool_by_name(run_store):
    for pool, name in (("gpu", "w-b"), ("cpu", "w-z"), ("gpu", "w-a")):
        run_store.upsert_worker(Worker(name=name, pool=pool, last_seen=BASE_TIME))
    assert [w.name for w in run_store.list_workers("gpu")] == ["w-a", "w-b"]
    assert [w.name for w in run_store.list_workers("cpu")] == ["w-z"]
    assert run_store.list_workers("unknown") == []
