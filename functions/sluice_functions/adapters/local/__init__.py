"""Adapters that keep files on the local disk (the embedded server)."""

from .bundles import LocalBundleStore

__all__ = ["LocalBundleStore"]
