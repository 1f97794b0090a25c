"""Caching and persisted results: hits across flow runs, expiry, policies, storage."""

from __future__ import annotations

import pickle
import time
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from sluice import flow, task
from sluice.engine.results import LocalResultStorage, S3ResultStorage, storage_from
from sluice.exceptions import ConfigurationError


def _counted():
    calls = []

    def fn(x: int) -> int:
        calls.append(x)
        return x * 10

    return fn, calls


def test_cache_hit_across_two_flow_runs(reporter, tmp_path):
    fn, calls = _counted()
    cached = task(cache_policy="inputs+source", result_storage=tmp_path)(fn)

    @flow
    def pipeline(x: int):
        return cached(x)

    # Given a first run computed the value, When a second run asks for the same input,
    # Then it is not computed again and its task run is Cached
    assert pipeline(2) == 20 and pipeline(2) == 20
    assert calls == [2]
    states = sorted((t.state.name for t in reporter.task_runs.values()))
    assert states == ["Cached", "Completed"]
    # and a different input is computed
    assert pipeline(3) == 30 and calls == [2, 3]


def test_cache_expires(reporter, tmp_path):
    fn, calls = _counted()
    cached = task(cache_policy="inputs", cache_expiration=0.2, result_storage=tmp_path)(fn)

    @flow
    def pipeline():
        return cached(1)

    pipeline()
    pipeline()
    assert calls == [1]
    time.sleep(0.25)
    pipeline()
    assert calls == [1, 1]


def test_cache_key_fn_and_none(reporter, tmp_path):
    fn, calls = _counted()
    by_parity = task(cache_key_fn=lambda ctx, params: str(params["x"] % 2),
                     result_storage=tmp_path)(fn)
    never = task(cache_key_fn=lambda ctx, params: None, result_storage=tmp_path)(fn)

    @flow
    def pipeline():
        return [by_parity(1), by_parity(3), by_parity(2), never(5), never(5)]

    assert pipeline() == [10, 10, 20, 50, 50]
    assert calls == [1, 2, 5, 5]


def test_source_policy_changes_with_the_code(reporter, tmp_path):
    def v1(x):
        return 1

    def v2(x):
        return 2

    v2.__qualname__ = v1.__qualname__  # same task identity, different source
    v2.__module__ = v1.__module__

    @flow
    def pipeline():
        return (task(cache_policy="source", result_storage=tmp_path)(v1)(0),
                task(cache_policy="source", result_storage=tmp_path)(v2)(0))

    assert pipeline() == (1, 2)


def test_no_cache_policy_means_no_caching(reporter, tmp_path):
    fn, calls = _counted()
    plain = task(result_storage=tmp_path)(fn)

    @flow
    def pipeline():
        return plain(1) + plain(1)

    pipeline()
    assert calls == [1, 1]
    assert not any(tmp_path.iterdir())


def test_persist_result_writes_under_the_run(reporter, tmp_path):
    kept = task(persist_result=True, result_storage=tmp_path)(lambda: {"rows": 3})

    @flow
    def pipeline():
        return kept()

    pipeline()
    (run,) = reporter.task_runs.values()
    assert run.result_key.startswith("runs/")
    _, value = pickle.loads((tmp_path / run.result_key).read_bytes())
    assert value == {"rows": 3}


def test_default_storage_is_under_sluice_home(reporter, isolated_sluice_home):
    cached = task(cache_policy="inputs")(lambda x: x)

    @flow
    def pipeline():
        return cached(1)

    pipeline()
    assert any((isolated_sluice_home / "results" / "cache").iterdir())


def test_unpicklable_result_is_not_fatal(reporter, tmp_path):
    import threading

    cached = task(cache_policy="inputs", result_storage=tmp_path)(lambda: threading.Lock())

    @flow
    def pipeline():
        return cached(return_state=True)

    assert pipeline().is_completed()
    assert any("could not persist" in r.message for r in reporter.logs)


def test_s3_result_storage_round_trip(reporter):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="results")
        storage = S3ResultStorage("s3://results/sluice", client=client)
        fn, calls = _counted()
        cached = task(cache_policy="inputs", cache_expiration=timedelta(hours=1),
                      result_storage=storage)(fn)

        @flow
        def pipeline():
            return cached(4)

        assert pipeline() == 40 and pipeline() == 40
        assert calls == [4]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="results")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("sluice/cache/")
        assert storage.read("cache/missing") is None


def test_storage_from_values(tmp_path):
    assert isinstance(storage_from(tmp_path), LocalResultStorage)
    assert isinstance(storage_from("s3://bucket/p"), S3ResultStorage)
    with pytest.raises(ConfigurationError, match="names no bucket"):
        storage_from("s3://")
    with pytest.raises(ConfigurationError, match="not supported"):
        storage_from("gs://bucket")


def test_a_retried_flow_resumes_where_it_broke(reporter, tmp_path):
    calls = []

    @task
    def extract():
        calls.append("extract")
        return [1, 2, 3]

    @task
    def load(rows):
        calls.append("load")
        if calls.count("load") == 1:
            raise ConnectionError("warehouse down")
        return len(rows)

    @flow(retries=1, persist_result=True, result_storage=tmp_path)
    def pipeline():
        return load(extract())

    # When the first attempt fails in `load`, Then the retry does not run `extract` again
    assert pipeline() == 3
    assert calls == ["extract", "load", "load"]
    by_name = {}
    for t in reporter.task_runs.values():
        by_name.setdefault(t.name, []).append(t.state.name)
    assert sorted(by_name["extract-0"]) == ["Cached", "Completed"]
    cached = next(t for t in reporter.task_runs.values() if t.state.name == "Cached")
    assert "earlier attempt" in cached.state.message


def test_without_persisted_results_a_retry_runs_everything(reporter, tmp_path):
    calls = []

    @task
    def step():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt")

    @flow(retries=1, result_storage=tmp_path)
    def pipeline():
        step()

    pipeline()
    assert len(calls) == 2
