"""What every store checks of a page request, whatever its backend."""

from __future__ import annotations

from sluice.exceptions import BadRequest
from sluice.models import MAX_PAGE_LIMIT


def check_page_limit(limit: int) -> int:
    """Return `limit` if it is a page size (1..MAX_PAGE_LIMIT); raise `BadRequest` otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise BadRequest(
            f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}",
            details={"field": "limit"},
        )
    return limit
