"""`sluice server start` leaves its startup objects out of the garbage collector's passes
(issue 20: each full collection during ingestion walked them all again)."""

from __future__ import annotations

import gc

from sluice_functions.embedded import run


def test_startup_objects_are_frozen_once_the_server_serves():
    gc.unfreeze()
    try:
        # When the server has started (everything it needs is built)
        run._freeze_startup_objects()
        # Then what exists is out of the collector's generations, and nothing was collected
        # into that permanent one by mistake (garbage is freed first)
        assert gc.get_freeze_count() > 0
        assert gc.garbage == []
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
