"""The embedded server's token chain (operator -> pool -> run): what each token is, that none can
be forged or widened by its holder, and what a worker does with the token it is given."""

from __future__ import annotations

import pytest

from sluice import tokens
from sluice.client import SluiceClient
from sluice.exceptions import ConfigurationError
from sluice.profiles import Connection
from sluice_worker.credentials import pool_client, run_credentials

OPERATOR = "o" * 10 + tokens.new_operator_token()


def test_each_token_says_who_it_is_for():
    pool = tokens.pool_token(OPERATOR, "etl", ("a-flow/nightly",))
    run = tokens.run_token(pool, "0190-run")
    assert tokens.identify(OPERATOR, OPERATOR) == tokens.TokenScope("operator")
    assert tokens.identify(pool, OPERATOR) == tokens.TokenScope(
        "worker", pool="etl", may_trigger=("a-flow/nightly",))
    assert tokens.identify(run, OPERATOR) == tokens.TokenScope(
        "flow-process", pool="etl", flow_run_id="0190-run", may_trigger=("a-flow/nightly",))


@pytest.mark.parametrize("forge", [
    lambda pool, run: pool.replace(".etl.", ".ml."),                 # another pool, same MAC
    lambda pool, run: run.replace(".etl.", ".ml."),
    lambda pool, run: run[:-3] + "AAA",                               # a guessed MAC
    lambda pool, run: tokens.run_token(tokens.pool_token("x" * 40, "etl"), "0190-run"),
    lambda pool, run: pool.split(".")[0] + ".etl.-." + pool.split(".")[3],  # grants dropped
    lambda pool, run: "sluice-pool.etl.%%%." + pool.split(".")[3],    # garbage grants
    lambda pool, run: OPERATOR + "x",
    lambda pool, run: "",
])
def test_a_token_cannot_be_forged_or_widened_by_its_holder(forge):
    pool = tokens.pool_token(OPERATOR, "etl", ("a-flow/nightly",))
    run = tokens.run_token(pool, "0190-run")
    assert tokens.identify(forge(pool, run), OPERATOR) is None


@pytest.mark.parametrize("bad", ["short", " " * 40, "x" * 20 + " " + "y" * 20, "é" * 40,
                                 "sluice-pool." + "x" * 40])
def test_the_operator_token_must_be_strong_plain_and_not_a_derived_one(bad):
    with pytest.raises(ConfigurationError, match="token"):
        tokens.check_operator_token(bad, source="test")


def client(token: str | None, kind: str = "local") -> SluiceClient:
    return SluiceClient(Connection("http://127.0.0.1:1", api_token=token, kind=kind,  # type: ignore[arg-type]
                                   region="eu-west-1"))


def test_a_worker_given_the_operator_token_works_with_its_pools_token_only():
    scoped = pool_client(client(OPERATOR), "etl")
    assert scoped.pool == "etl"
    assert scoped.connection.api_token == tokens.pool_token(OPERATOR, "etl")
    flow_token = run_credentials(scoped.connection.api_token, "0190-run")
    assert tokens.identify(flow_token or "", OPERATOR) == tokens.TokenScope(
        "flow-process", pool="etl", flow_run_id="0190-run")
    # The operator's token itself never reaches a flow process.
    assert run_credentials(OPERATOR, "0190-run") is None


def test_a_worker_refuses_a_token_of_another_pool_more_grants_or_a_run_token(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    etl = tokens.pool_token(OPERATOR, "etl")
    with pytest.raises(ConfigurationError, match="pool 'etl', not 'ml'"):
        pool_client(client(etl), "ml")
    with pytest.raises(ConfigurationError, match="may-trigger"):
        pool_client(client(etl), "etl", ["a-flow/nightly"])
    with pytest.raises(ConfigurationError, match="run's token"):
        pool_client(client(tokens.run_token(etl, "r")), "etl")
    with pytest.raises(ConfigurationError, match="grant_trigger"):
        pool_client(client(None, kind="aws"), "etl", ["a-flow/nightly"])


@pytest.mark.parametrize("ref", ["nightly", "a/b/c", "a/", "/b", "a\x1b/b", "a/b*"])
def test_a_grant_names_exactly_one_deployment(ref):
    with pytest.raises(ConfigurationError):
        tokens.trigger_grant(ref)
