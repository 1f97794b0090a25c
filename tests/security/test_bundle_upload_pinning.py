"""Attack: a presigned bundle upload URL accepted any bytes of any size (whoever held it could
store a different bundle under a trusted hash, or fill the bucket), and used the global S3
endpoint (new buckets outside us-east-1 answer with redirects or 400).

moto does not check presigned signatures nor `x-amz-checksum-sha256` (a wrong body is stored
with 200), so the AWS tests prove the pinning the way S3 enforces it: the size and checksum
are signed headers of the URL, and the signature S3 recomputes for a request carrying another
size or checksum differs from the URL's (S3 answers SignatureDoesNotMatch; a body that does
not hash to the signed checksum gets BadDigest)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from moto import mock_aws

from sluice.client import SluiceClient
from sluice.exceptions import ConfigurationError
from sluice.profiles import Connection

DATA = b"PK\x03\x04 the bundle's bytes"
DIGEST = hashlib.sha256(DATA).hexdigest()
REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def store_in(region: str, *, create: bool = True):
    from sluice_functions.adapters.aws.clients import build_aws_clients
    from sluice_functions.adapters.aws.s3_bundles import S3BundleStore

    clients = build_aws_clients(boto3.session.Session(), region_name=region)
    where = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    if create:
        clients.s3.create_bucket(Bucket="sluice-bundles-abc123", **where)
    return S3BundleStore(clients.s3, "sluice-bundles-abc123"), clients.s3


def signed(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def presign_as_sent(monkeypatch, s3, url: str, *, size: int, checksum: str) -> str:
    """The signature S3 computes for a PUT to `url` carrying these header values: the same
    signing at the URL's own timestamp, so only the header values differ."""
    import botocore.auth

    stamp = datetime.strptime(signed(url)["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: stamp)
    again = s3.generate_presigned_url("put_object", Params={
        "Bucket": "sluice-bundles-abc123", "Key": f"bundles/{DIGEST}.zip",
        "ContentType": "application/zip", "ContentLength": size, "ChecksumSHA256": checksum},
        ExpiresIn=int(signed(url)["X-Amz-Expires"]))
    return signed(again)["X-Amz-Signature"]


def test_presigned_upload_signs_the_size_and_the_checksum(aws, monkeypatch):
    # Given the bucket's store, When an upload URL is made for DATA
    store, s3 = store_in(REGION)
    url = store.upload_url(DIGEST, len(DATA))
    headers = store.upload_headers(DIGEST, len(DATA))
    # Then the size and the checksum are signed headers, with the values the client must send
    assert set(signed(url)["X-Amz-SignedHeaders"].split(";")) >= {
        "content-length", "content-type", "host", "x-amz-checksum-sha256"}
    assert headers == {"content-type": "application/zip", "content-length": str(len(DATA)),
                       "x-amz-checksum-sha256": base64.b64encode(
                           hashlib.sha256(DATA).digest()).decode()}
    # And S3 accepts exactly those values: the same request signs to the URL's signature
    good = headers["x-amz-checksum-sha256"]
    assert presign_as_sent(monkeypatch, s3, url, size=len(DATA), checksum=good) == \
        signed(url)["X-Amz-Signature"]


@pytest.mark.parametrize("attack", ["bigger", "other-bytes"])
def test_a_put_of_other_size_or_other_bytes_does_not_match_the_signature(aws, monkeypatch,
                                                                         attack):
    store, s3 = store_in(REGION)
    url = store.upload_url(DIGEST, len(DATA))
    other = b"x" * (10 * len(DATA)) if attack == "bigger" else b"Z" * len(DATA)
    checksum = base64.b64encode(hashlib.sha256(other).digest()).decode()
    # When someone holding the URL sends other bytes with their true size and checksum
    sent = presign_as_sent(monkeypatch, s3, url, size=len(other), checksum=checksum)
    # Then the signature does not match: S3 refuses the PUT, nothing is stored
    assert sent != signed(url)["X-Amz-Signature"]
    assert not store.exists(DIGEST)


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2", "us-east-1"])
def test_presigned_urls_use_the_buckets_regional_endpoint(aws, region):
    store, _ = store_in(region)
    for url in (store.upload_url(DIGEST, len(DATA)), store.download_url(DIGEST)):
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert parts.hostname == f"sluice-bundles-abc123.s3.{region}.amazonaws.com"
        assert signed(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"


def test_a_configured_endpoint_is_kept_for_tests_and_s3_compatibles(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    store, _ = store_in(REGION, create=False)
    assert store.upload_url(DIGEST, len(DATA)).startswith(
        "http://127.0.0.1:4566/sluice-bundles-abc123/bundles/")


def test_the_bundle_route_returns_the_pinned_headers(aws):
    from sluice.models import BundleUploadRequest
    from sluice_functions.service.code import bundle_upload

    store, _ = store_in(REGION)
    location = bundle_upload(BundleUploadRequest(sha256=DIGEST, size=len(DATA)),
                             bundles=store)
    assert location.upload_headers["content-length"] == str(len(DATA))
    assert "x-amz-checksum-sha256" in location.upload_headers


def recording_client(monkeypatch) -> tuple[SluiceClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    client = SluiceClient(Connection(api_url="http://127.0.0.1:9"))
    monkeypatch.setattr(client, "_raw",
                        lambda: httpx.Client(transport=httpx.MockTransport(answer)))
    return client, sent


def test_the_client_sends_the_pinned_headers(monkeypatch):
    client, sent = recording_client(monkeypatch)
    checksum = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    client.put_bundle("https://b.s3.eu-west-1.amazonaws.com/k", DATA, headers={
        "content-type": "application/zip", "content-length": str(len(DATA)),
        "x-amz-checksum-sha256": checksum})
    (request,) = sent
    assert request.headers["x-amz-checksum-sha256"] == checksum
    assert request.headers["content-length"] == str(len(DATA))
    assert request.content == DATA


def test_the_client_refuses_to_send_bytes_the_url_was_not_made_for(monkeypatch):
    client, sent = recording_client(monkeypatch)
    with pytest.raises(ConfigurationError, match="takes 3 bytes"):
        client.put_bundle("https://b.s3.eu-west-1.amazonaws.com/k", DATA,
                          headers={"content-length": "3"})
    assert sent == []  # nothing went out


def test_the_embedded_store_refuses_oversized_or_mismatched_bytes_and_writes_nothing(
        tmp_path, monkeypatch):
    from sluice_functions.adapters.local import bundles as local_bundles

    store = local_bundles.LocalBundleStore(tmp_path / "bundles", "http://127.0.0.1:1")
    # Given a limit of 16 bytes (the real one is MAX_BUNDLE_BYTES)
    monkeypatch.setattr(local_bundles, "MAX_BUNDLE_BYTES", 16)
    big = b"y" * 17
    with pytest.raises(ValueError, match="over the 16-byte bundle limit"):
        store.write(hashlib.sha256(big).hexdigest(), big)
    # And bytes that do not hash to the name
    with pytest.raises(ValueError, match="do not match the bundle's sha256"):
        store.write(DIGEST, b"short")
    # Then nothing at all was written (no bundle, no temporary upload file)
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())
