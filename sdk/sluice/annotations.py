"""Prefect's input annotations: `allow_failure(...)` and `quote(...)`, and the `tags()` block.

    flow_result = cleanup(allow_failure(load_future))   # runs even if `load` failed
    big = summarize(quote(huge_dict))                    # passed as is, never traversed
    with tags("nightly", "eu"):                          # runs created inside get these tags
        pipeline()
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class allow_failure(Generic[T]):  # noqa: N801 - the name Prefect users know
    """Wrap a future (or a list/dict of futures) passed to a task so that the task runs even if
    that upstream run failed: a failed upstream's exception is passed in place of its value."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"allow_failure({self.value!r})"


class quote(Generic[T]):  # noqa: N801 - the name Prefect users know
    """Wrap a task argument so it is passed exactly as given: it is not searched for futures
    (no upstream links are recorded for what is inside), which also saves time on large
    collections."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unquote(self) -> T:
        return self.value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"quote({self.value!r})"


_tags: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("sluice_tags",
                                                                       default=())


@contextmanager
def tags(*names: str) -> Iterator[tuple[str, ...]]:
    """Add `names` to the tags of every flow run and task run created inside the block
    (blocks nest; each adds to the tags of the enclosing one). Yields all tags in effect."""
    from ._options import as_tags
    from .exceptions import ConfigurationError

    try:
        added = as_tags(list(names))
    except ValueError as exc:
        raise ConfigurationError(f"tags(): {exc}; for example tags('etl', 'env:prod')") from None
    current = _tags.get()
    merged = current + tuple(t for t in dict.fromkeys(added) if t not in current)
    token = _tags.set(merged)
    try:
        yield merged
    finally:
        _tags.reset(token)


def current_tags() -> tuple[str, ...]:
    """The tags of the enclosing `tags()` blocks (empty outside any)."""
    return _tags.get()


def with_context_tags(own: tuple[str, ...]) -> list[str]:
    """A run's tags: its own, then those of the enclosing `tags()` blocks (no duplicates)."""
    extra = _tags.get()
    if not extra:
        return list(own)
    return list(dict.fromkeys(own + extra))
