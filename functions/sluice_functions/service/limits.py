"""Size and shape checks on what clients send, against the named limits of `sluice.models`.

Every check runs before anything is written, so a refused request writes nothing. Oversized
payloads raise `PayloadTooLarge` (413); malformed ones raise `ValidationError` (422) naming the
field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sluice.exceptions import PayloadTooLarge, ValidationError
from sluice.models import (
    MAX_LOG_MESSAGE_CHARS,
    MAX_PAGE_LIMIT,
    MAX_PARAMETERS_BYTES,
    MAX_STATE_MESSAGE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    State,
)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (how it is stored)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def check_parameters(parameters: dict[str, Any], *, field: str = "parameters") -> None:
    size = json_size(parameters)
    if size > MAX_PARAMETERS_BYTES:
        raise PayloadTooLarge(
            f"{field} take {size} bytes as JSON; the limit is {MAX_PARAMETERS_BYTES}",
            details={"field": field, "size": size, "limit": MAX_PARAMETERS_BYTES},
        )


def check_tags(tags: list[str], *, field: str = "tags") -> None:
    if len(tags) > MAX_TAGS:
        raise ValidationError(
            f"{field}: at most {MAX_TAGS} tags, got {len(tags)}",
            details=[{"loc": [field], "msg": f"at most {MAX_TAGS} tags"}],
        )
    for index, tag in enumerate(tags):
        if not tag or len(tag) > MAX_TAG_CHARS:
            raise ValidationError(
                f"{field}[{index}]: a tag has 1 to {MAX_TAG_CHARS} characters",
                details=[{"loc": [field, index], "msg": f"1 to {MAX_TAG_CHARS} characters"}],
            )


def check_state(state: State, *, field: str = "state") -> None:
    """States built with `model_construct` skip pydantic's max_length; check it here too."""
    message = state.message or ""
    if len(message) > MAX_STATE_MESSAGE_CHARS:
        raise PayloadTooLarge(
            f"{field}.message has {len(message)} characters; the limit is "
            f"{MAX_STATE_MESSAGE_CHARS}",
            details={"field": f"{field}.message", "limit": MAX_STATE_MESSAGE_CHARS},
        )
    if state.details is not None and json_size(state.details) > MAX_STATE_MESSAGE_CHARS:
        raise PayloadTooLarge(
            f"{field}.details is larger than {MAX_STATE_MESSAGE_CHARS} bytes as JSON",
            details={"field": f"{field}.details", "limit": MAX_STATE_MESSAGE_CHARS},
        )


def check_log_messages(messages: Iterable[str], *, field: str = "logs") -> None:
    for index, message in enumerate(messages):
        if len(message) > MAX_LOG_MESSAGE_CHARS:
            raise PayloadTooLarge(
                f"{field}[{index}].message has {len(message)} characters; the limit is "
                f"{MAX_LOG_MESSAGE_CHARS}",
                details={"field": f"{field}[{index}].message", "limit": MAX_LOG_MESSAGE_CHARS},
            )


def check_page_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValidationError(
            f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit}",
            details=[{"loc": ["limit"], "msg": f"1..{MAX_PAGE_LIMIT}"}],
        )
