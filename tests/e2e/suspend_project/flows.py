"""The flow the suspend end-to-end test deploys: its first attempt records its pid and lease and
runs until it is stopped; a later attempt (after a resume) finishes at once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sluice import flow


@flow
def long_loop(marker: str, seconds: float = 120.0) -> str:
    if Path(marker).exists():
        return "resumed and done"
    # Written whole in one rename, so the test never reads half of it.
    partial = Path(marker + ".tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), "lease": os.environ.get("SLUICE_LEASE")}))
    partial.rename(marker)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "ran to the end without being stopped"
