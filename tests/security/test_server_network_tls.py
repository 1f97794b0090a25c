"""Optional TLS on the embedded server, verified by the client, the SQS endpoint and the CLI's
profile; a warning when serving beyond loopback without it (issue 13)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest

from sluice.client.api import SluiceClient
from sluice.client.transport import Unreachable
from sluice.exceptions import ConfigurationError, NotFound
from sluice.profiles import Connection, load_profiles, resolve_connection
from sluice_functions.embedded import EmbeddedServer
from sluice_functions.embedded.network import (
    ConnectionLimits,
    cleartext_warning,
    server_tls_context,
)

from .server_network_support import TOKEN, eventually, exchange

x509 = pytest.importorskip("cryptography.x509", reason="generating a certificate needs "
                                                       "the cryptography package")


def self_signed(directory: Path, names: tuple[str, ...] = ("localhost",),
                ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
    """A self-signed certificate and its unencrypted key, as PEM files."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice test")])
    now = dt.datetime.now(dt.timezone.utc)
    alternative = [x509.DNSName(n) for n in names] + \
        [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def tls_server(tmp_path, certificate):
    cert, key = certificate
    plane = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=TOKEN, tick_seconds=3600,
                           tls_cert=cert, tls_key=key).start()
    yield plane
    plane.stop()


def test_the_server_speaks_https_to_a_client_that_trusts_its_certificate(tls_server,
                                                                          certificate):
    # Given a server started with a certificate
    assert tls_server.url.startswith("https://")
    # When a client trusting that certificate calls it, Then it is served over TLS >= 1.2
    context = ssl.create_default_context(cafile=str(certificate[0]))
    answer = httpx.get(f"{tls_server.url}/health", verify=context,
                       headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    # And the SDK client reaches it through the connection's ca_bundle
    client = SluiceClient(Connection(api_url=tls_server.url, api_token=TOKEN,
                                     ca_bundle=str(certificate[0])), attempts=1)
    try:
        assert "default" in [pool.name for pool in client.list_pools()]
    finally:
        client.close()


def test_events_batches_go_over_tls_with_the_connections_trust(tls_server, certificate):
    # Given the SDK client of a TLS server (its keep-alive poster sends the batches)
    trusting = SluiceClient(Connection(api_url=tls_server.url, api_token=TOKEN,
                                       ca_bundle=str(certificate[0])), attempts=1)
    assert trusting.poster is not None
    # When it sends a batch for a run that does not exist, Then the server answered over TLS
    with pytest.raises(NotFound):
        trusting.send_events("no-such-run", b'{"task_runs":[]}')
    trusting.close()
    # And a client that does not trust the certificate never gets that far
    doubting = SluiceClient(Connection(api_url=tls_server.url, api_token=TOKEN), attempts=1)
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        doubting.send_events("no-such-run", b'{"task_runs":[]}')
    doubting.close()


def test_a_tls_connection_the_server_closed_while_idle_is_replaced(tmp_path, certificate,
                                                                   monkeypatch):
    # Given a TLS server that closes idle connections after 0.3 s (without a TLS goodbye), and
    # a client that would keep its connection longer
    monkeypatch.setattr("sluice.client.keepalive.KEEPALIVE_EXPIRY_SECONDS", 60.0)
    cert, key = certificate
    plane = EmbeddedServer(data_dir=tmp_path / "idle", port=0, token=TOKEN, tick_seconds=3600,
                           tls_cert=cert, tls_key=key,
                           limits=ConnectionLimits(idle_timeout=0.3)).start()
    client = SluiceClient(Connection(api_url=plane.url, api_token=TOKEN,
                                     ca_bundle=str(cert)), attempts=1)
    try:
        with pytest.raises(NotFound):
            client.send_events("no-such-run", b'{"task_runs":[]}')
        time.sleep(0.8)
        # When the next batch goes, Then it reaches the server over a new connection (one
        # attempt: no retry of the client's hid it)
        with pytest.raises(NotFound):
            client.send_events("no-such-run", b'{"task_runs":[]}')
    finally:
        client.close()
        plane.stop()


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server):
    # Given a client with only the system's trust store, When it calls, Then TLS fails
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/health")


def test_plain_http_to_the_tls_port_gets_a_json_400_that_says_https(tls_server):
    # Given a client that speaks plain HTTP to the TLS port, When it sends a request,
    request = (b"GET /health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + TOKEN.encode()
               + b"\r\n\r\n")
    answer = exchange(tls_server.port, request)
    # Then it is told to use https (and its bearer token went nowhere)
    assert answer.status == 400
    assert "https://" in answer.json()["message"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 itself is deprecated
def test_tls_older_than_1_2_is_refused(tls_server, certificate):
    assert server_tls_context(*certificate).minimum_version == ssl.TLSVersion.TLSv1_2
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_server.url}/health", verify=context)


def test_the_sqs_endpoint_works_over_https_with_a_custom_ca(tls_server, certificate):
    # Given boto3 (the worker's SQS client) verifying with the certificate as its CA bundle
    sqs = boto3.client("sqs", endpoint_url=tls_server.sqs_endpoint, region_name="us-east-1",
                       aws_access_key_id="sluice", aws_secret_access_key=TOKEN,
                       verify=str(certificate[0]))
    # When it sends and receives, Then the signed requests go through over TLS
    url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="over tls")
    (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == "over tls"


@pytest.mark.parametrize("problem", ["only the certificate", "a missing key",
                                     "a key that does not match", "an encrypted key"])
def test_bad_tls_files_are_refused_before_binding(tmp_path, certificate, problem):
    cert, key = certificate
    (tmp_path / "other").mkdir()
    _, other_key = self_signed(tmp_path / "other")
    arguments = {"only the certificate": {"tls_cert": cert},
                 "a missing key": {"tls_cert": cert, "tls_key": tmp_path / "nope.key"},
                 "a key that does not match": {"tls_cert": cert, "tls_key": other_key}}
    if problem == "an encrypted key":
        from cryptography.hazmat.primitives import serialization

        loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
        encrypted = tmp_path / "encrypted.key"
        encrypted.write_bytes(loaded.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        arguments[problem] = {"tls_cert": cert, "tls_key": encrypted}
    with pytest.raises(ConfigurationError, match="tls|TLS"):
        EmbeddedServer(data_dir=tmp_path / "data", port=0, **arguments[problem])
    assert not (tmp_path / "data").exists()  # nothing was created


def test_serving_beyond_loopback_without_tls_warns():
    assert cleartext_warning("127.0.0.1", tls=False) is None
    assert cleartext_warning("::1", tls=False) is None
    assert cleartext_warning("0.0.0.0", tls=True) is None
    warning = cleartext_warning("0.0.0.0", tls=False)
    assert warning is not None and "clear text" in warning and "--tls-cert" in warning


def test_server_start_with_tls_writes_a_profile_the_client_verifies(tmp_path, certificate,
                                                                    isolated_sluice_home):
    # Given `sluice server start --tls-cert --tls-key` on a free port
    cert, key = certificate
    env = {**os.environ, "SLUICE_HOME": str(isolated_sluice_home), "SLUICE_API_TOKEN": TOKEN,
           "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "server", "start", "--port", "0",
             "--tls-cert", str(cert), "--tls-key", str(key)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        eventually(lambda: "listening on" in log.read_text() or process.poll() is not None,
                   timeout=60, what="the server to start")
        assert "listening on https://" in log.read_text(), log.read_text()
        # When a client resolves the local profile the server wrote
        profile = load_profiles().profiles["local"]
        assert profile.api_url.startswith("https://") and profile.ca_bundle == str(cert)
        connection = resolve_connection()
        assert connection is not None and connection.ca_bundle == str(cert)
        # Then it verifies the server's certificate and is served
        client = SluiceClient(connection, attempts=1)
        try:
            assert "default" in [pool.name for pool in client.list_pools()]
        finally:
            client.close()
        assert "clear text" not in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_a_ca_bundle_that_cannot_be_read_is_named_with_the_fix(tmp_path):
    # Given a profile whose ca_bundle does not exist, When a client is made, Then it says so
    with pytest.raises(ConfigurationError, match="ca_bundle"):
        SluiceClient(Connection(api_url="https://127.0.0.1:1",
                                ca_bundle=str(tmp_path / "missing.pem")))
