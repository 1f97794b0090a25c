"""`sluice.secret(name)`: the local store, the AWS stores (moto), the cache, references in
parameters, and the masking of registered values before anything leaves the process."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import sluice
from sluice import flow, get_run_logger, redaction, task
from sluice.exceptions import ConfigurationError, SecretNotFound
from sluice.models import SECRET_MASK, LogRecord, secret_reference, utcnow
from sluice.reporting import InMemoryReporter
from sluice.secrets import (
    AwsSecretStore,
    LocalSecretStore,
    clear_cache,
    resolve_references,
    secret,
    secret_store,
)


@pytest.fixture(autouse=True)
def fresh():
    clear_cache()
    redaction._forget_all()
    yield
    clear_cache()
    redaction._forget_all()


def test_the_local_store_keeps_private_files(isolated_sluice_home):
    store = secret_store()
    assert isinstance(store, LocalSecretStore)
    store.set("prod/db-password", "hunter2-long")
    path = isolated_sluice_home / "secrets" / "prod" / "db-password"
    assert path.read_text() == "hunter2-long"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (isolated_sluice_home / "secrets").stat().st_mode & 0o777 == 0o700
    assert sluice.secret("prod/db-password") == "hunter2-long"
    assert store.names() == ["prod/db-password"]
    assert store.delete("prod/db-password") and not store.delete("prod/db-password")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../b", "", "a b", "x" * 513, "a//b"])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigurationError):
        secret(name)


def test_a_missing_secret_says_how_to_create_it():
    with pytest.raises(SecretNotFound, match="sluice secret set nope"):
        secret("nope")


class CountingStore:
    def __init__(self, value: str | None) -> None:
        self.value, self.calls = value, 0

    def get(self, name: str) -> str | None:
        self.calls += 1
        return self.value

    def describe(self) -> str:
        return "counting"


def test_values_are_cached_for_a_while(monkeypatch):
    store = CountingStore("cached-value")
    assert secret("x", store=store) == secret("x", store=store) == "cached-value"
    assert store.calls == 1
    monkeypatch.setattr("sluice.secrets.CACHE_TTL_SECONDS", 0.0)
    clear_cache()
    secret("x", store=store)
    secret("x", store=store)
    assert store.calls == 3


def test_aws_reads_ssm_with_decryption_then_secrets_manager():
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        ssm.put_parameter(Name="/prod/db", Value="from-ssm", Type="SecureString")
        boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="api-key", SecretString="from-secrets-manager")
        store = AwsSecretStore("eu-west-1")
        assert secret("/prod/db", store=store) == "from-ssm"
        assert secret("api-key", store=store) == "from-secrets-manager"
        with pytest.raises(SecretNotFound, match="SSM Parameter Store or Secrets Manager"):
            secret("missing", store=store)
        store.set("/prod/new", "written")
        assert ssm.get_parameter(Name="/prod/new")["Parameter"]["Type"] == "SecureString"


def test_an_aws_profile_reads_from_aws(monkeypatch):
    monkeypatch.setenv("SLUICE_API_URL", "https://example.execute-api.eu-west-1.amazonaws.com")
    monkeypatch.setenv("SLUICE_KIND", "aws")
    monkeypatch.setenv("SLUICE_REGION", "eu-west-1")
    from sluice.settings import get_settings

    get_settings.cache_clear()
    store = secret_store()
    assert isinstance(store, AwsSecretStore) and store.region == "eu-west-1"


def test_references_in_parameters_are_resolved():
    store = CountingStore("resolved-secret")
    parameters = {"password": secret_reference("db"), "day": "mon", "n": {"$secret": "x",
                                                                         "other": 1}}
    resolved = resolve_references(parameters, store=store)
    # Issue 13: resolved as SecretStr, never a plain string (a `str` parameter refuses it).
    assert isinstance(resolved["password"], SecretStr)
    assert resolved["password"].get_secret_value() == "resolved-secret"
    assert {k: v for k, v in resolved.items() if k != "password"} == {
        "day": "mon", "n": {"$secret": "x", "other": 1}}
    assert redaction.redact("the resolved-secret here") == f"the {SECRET_MASK} here"


def test_redaction_masks_registered_values_longest_first():
    assert redaction.redact("nothing registered") == "nothing registered"
    redaction.register("abcd")
    redaction.register(SecretStr("abcdefgh"))
    redaction.register("xy")  # too short to mask
    assert redaction.redact("abcdefgh abcd xy") == f"{SECRET_MASK} {SECRET_MASK} xy"
    assert redaction.redact_value({"k": ["abcd", 3]}) == {"k": [SECRET_MASK, 3]}


def test_a_flow_that_leaks_secrets_reports_masks_only(monkeypatch):
    from sluice.client.reporter import HttpReporter

    sent: list[tuple[str, object]] = []

    class Client:
        connection = type("C", (), {"api_url": "http://x"})()

        def create_flow_run(self, request):  # noqa: ANN001, ANN202
            sent.append(("create", request.model_dump_json()))

        def set_flow_run_state(self, run_id, state, tid, lease=None):  # noqa: ANN001, ANN202
            sent.append(("state", state.model_dump_json()))
            from sluice.models import SetStateResponse, TransitionStatus

            return SetStateResponse(status=TransitionStatus.ACCEPT, state=state)

        def send_events(self, run_id, body, attempts=None):  # noqa: ANN001, ANN202
            sent.append(("events", body.decode()))

    store = CountingStore("api-key-value")
    monkeypatch.setattr("sluice.secrets.secret_store", lambda profile=None: store)

    @task
    def use(key: str) -> None:
        raise ValueError(f"rejected {key}")

    @flow(log_prints=True)
    def leaky(password: SecretStr) -> None:
        key = sluice.secret("api-key")
        print("password", password.get_secret_value(), "key", key)
        get_run_logger().info("key=%s", key)
        use.submit(key).wait()
        raise RuntimeError(f"{password.get_secret_value()}|{key}")

    reporter = HttpReporter(Client(), flush_interval=0.05)
    state = sluice.run_flow(leaky, {"password": "the-password"}, reporter=reporter)
    reporter.close()
    assert state.type.value == "FAILED"
    everything = "\n".join(text for _, text in sent)
    assert "the-password" not in everything and "api-key-value" not in everything
    assert f"password {SECRET_MASK} key {SECRET_MASK}" in everything
    assert f"rejected {SECRET_MASK}" in everything
    assert f"{SECRET_MASK}|{SECRET_MASK}" in everything
    record = LogRecord(id="1", flow_run_id="r", timestamp=utcnow(), message="the-password")
    reporter.report_log(record)
    assert record.message == SECRET_MASK


def test_in_memory_runs_keep_secret_parameters_masked():
    @flow
    def pipeline(password: SecretStr) -> int:
        return len(password.get_secret_value())

    reporter = InMemoryReporter()
    state = sluice.run_flow(pipeline, {"password": "hunter2-long"}, reporter=reporter)
    assert state.result() == 12
    assert reporter.last_flow_run().parameters == {"password": SECRET_MASK}
