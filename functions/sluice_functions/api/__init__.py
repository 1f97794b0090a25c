"""The control plane's HTTP API (Powertools `APIGatewayHttpResolver`): `build_app(ports)`."""

from .app import build_app
from .parameters import DEFAULT_PAGE_LIMIT, MAX_CURSOR_CHARS, MAX_ID_CHARS, MAX_NAME_CHARS
from .request_checks import LOCAL_CALLER, MAX_JSON_DEPTH, MAX_REQUEST_BODY_BYTES, caller_identity

__all__ = [
    "build_app", "caller_identity", "LOCAL_CALLER", "MAX_REQUEST_BODY_BYTES", "MAX_JSON_DEPTH",
    "DEFAULT_PAGE_LIMIT", "MAX_ID_CHARS", "MAX_NAME_CHARS", "MAX_CURSOR_CHARS",
]
