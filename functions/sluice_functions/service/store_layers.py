"""Store wrappers built for one request or one pool (`RequestReads`, `PoolScopedStore`) keep
the store they wrap in `_store`; what needs the store under them walks the layers here, so the
convention lives in one place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Where a wrapper keeps the store it wraps.
WRAPPED_STORE_ATTRIBUTE = "_store"
#: Layers looked through at most (a request wraps a pool-scoped store: two today).
MAX_LAYERS = 5


def store_layers(store: Any) -> Iterator[Any]:
    """`store`, then each store it wraps, outermost first."""
    for _ in range(MAX_LAYERS):
        if store is None:
            return
        yield store
        store = getattr(store, "__dict__", {}).get(WRAPPED_STORE_ATTRIBUTE)


def root_store(store: Any) -> Any:
    """The store under every wrapper."""
    *_, root = store_layers(store)
    return root
