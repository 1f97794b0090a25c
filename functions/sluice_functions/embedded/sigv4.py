"""Checking SigV4 signatures of SQS requests against the server's token (botocore computes)."""

from __future__ import annotations

import hmac
import re

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)")


def signature_matches(method: str, url: str, headers: dict[str, str], body: bytes, *,
                      secret: str) -> bool:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lowered = {k.lower(): v for k, v in headers.items()}
    match = _AUTH.fullmatch(lowered.get("authorization", ""))
    if match is None or "x-amz-date" not in lowered:
        return False
    access_key, _, region, service, signed, signature = match.groups()
    request = AWSRequest(method=method, url=url, data=body,
                         headers={h: lowered.get(h, "") for h in signed.split(";")})
    request.context["timestamp"] = lowered["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected, signature)
