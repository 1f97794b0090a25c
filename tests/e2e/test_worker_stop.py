"""An idle worker stops on SIGTERM/SIGINT without waiting out its SQS long poll."""

from __future__ import annotations

import signal
import subprocess

import pytest

from .harness import wait_for

#: The longest long poll SQS allows: an idle worker sits in one almost all the time.
POLL_WAIT_SECONDS = 20
#: Generous for a loaded machine, and still well before the long poll would have answered.
EXIT_WITHIN_SECONDS = 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_idle_worker_exits_before_its_long_poll_would_end(sluice, sig):
    # Given an idle worker in a 20 s long poll on an empty queue
    worker = sluice.start_worker("--poll-wait", str(POLL_WAIT_SECONDS))
    wait_for(lambda: "polling pool" in worker.output(), 60, "the worker to poll")
    # When it is told to stop
    worker.send_signal(sig)
    # Then it exits cleanly before the long poll would have answered
    try:
        code = worker.popen.wait(EXIT_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the idle worker still runs {EXIT_WITHIN_SECONDS} s after {sig.name}:\n"
                    f"{worker.output()}")
    assert code == 0, worker.output()
    assert "stopped" in worker.output()
