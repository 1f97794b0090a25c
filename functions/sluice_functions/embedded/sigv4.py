"""Checking SigV4 signatures of SQS requests against the server's token (botocore computes).

What the headers alone can tell (the Authorization header's shape, its credential scope, the
request's date) is checked before the body is read (`head_refusal`); the signature itself needs
the body (`signature_matches`, which checks the head again)."""

from __future__ import annotations

import hmac
import re
from datetime import datetime, timezone

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)")
#: botocore's SIGV4_TIMESTAMP.
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
#: AWS takes a signed request up to 15 minutes from its own clock, then answers "Signature
#: expired" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html); the
#: embedded server is stricter: a captured request can be replayed for 5 minutes at most.
MAX_CLOCK_SKEW_SECONDS = 300


def head_refusal(headers: dict[str, str], *, now: datetime | None = None
                 ) -> tuple[str, str] | None:
    """None when the headers carry a well-formed SigV4 Authorization dated within
    MAX_CLOCK_SKEW_SECONDS of `now`; else (SQS error code, message naming the fix)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        return ("MissingAuthenticationToken",
                "the request is not signed: sign it with SigV4, the server's token as the "
                "secret key (the worker does this from the profile's api_token)")
    match = _AUTH.fullmatch(authorization)
    if match is None:
        return ("IncompleteSignature",
                "the Authorization header is not `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/"
                "SERVICE/aws4_request, SignedHeaders=..., Signature=...`: sign with botocore")
    stamp = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, _AMZ_DATE).replace(tzinfo=timezone.utc)
    except ValueError:
        return ("IncompleteSignature",
                f"X-Amz-Date must be a UTC time like 20250101T000000Z, got {stamp[:40]!r}")
    if match.group(2) != stamp[:8]:
        return ("SignatureDoesNotMatch",
                f"the credential scope's date {match.group(2)} is not X-Amz-Date's day "
                f"{stamp[:8]}")
    now = now or datetime.now(timezone.utc)
    skew = abs((now - signed_at).total_seconds())
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return ("InvalidSignatureException",
                f"Signature expired: the request is dated {stamp}, {skew:.0f} s from the "
                f"server's clock ({now.strftime(_AMZ_DATE)}); more than "
                f"{MAX_CLOCK_SKEW_SECONDS} s is refused (a replay, or a wrong clock: sync this "
                "host with NTP)")
    return None


def signature_matches(method: str, url: str, headers: dict[str, str], body: bytes, *,
                      secret: str, now: datetime | None = None) -> bool:
    """Whether the request is signed with `secret` and dated within MAX_CLOCK_SKEW_SECONDS."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if head_refusal(headers, now=now) is not None:
        return False
    lowered = {k.lower(): v for k, v in headers.items()}
    match = _AUTH.fullmatch(lowered["authorization"])
    assert match is not None  # head_refusal checked it
    access_key, _, region, service, signed, signature = match.groups()
    request = AWSRequest(method=method, url=url, data=body,
                         headers={h: lowered.get(h, "") for h in signed.split(";")})
    request.context["timestamp"] = lowered["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected, signature)


def access_key_of(headers: dict[str, str]) -> str | None:
    """The access key of a SigV4 Authorization header, or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    match = _AUTH.fullmatch(lowered.get("authorization", ""))
    return match.group(1) if match else None
