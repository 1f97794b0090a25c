"""Records still buffered when a flow process exits go at exit, however many batches they
make (the sender used to die importing its thread pool during interpreter shutdown, and lose
the records it had taken)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, sys
    from sluice.client.reporter import HttpReporter
    from sluice.models import EventsAccepted, LogRecord, utcnow
    from sluice.profiles import Connection

    class Api:
        connection = Connection(api_url="http://fake")

        def send_events(self, flow_run_id, batch, attempts=None):
            ids = [line["id"] for line in json.loads(batch)["logs"]]
            with open(sys.argv[1], "a") as out:
                out.write("".join(f"{i}\\n" for i in ids))
            return EventsAccepted(task_runs=0, logs=len(ids))

    reporter = HttpReporter(Api(), flush_interval=3600, max_batch=2)
    for n in range(7):
        reporter.report_log(LogRecord(id=f"l{n}", flow_run_id="fr", timestamp=utcnow(),
                                      message="line"))
""")


def test_a_backlog_of_several_batches_is_delivered_when_the_process_exits(tmp_path: Path):
    # Given a process that buffers four batches' worth of log lines and exits at once
    delivered = tmp_path / "delivered.txt"

    # When it runs to its end
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(delivered)], capture_output=True,
                          text=True, timeout=60)

    # Then every line was delivered once, and the sender did not die on the way
    assert done.returncode == 0, done.stderr
    assert "Exception in thread" not in done.stderr, done.stderr
    assert sorted(delivered.read_text().split()) == [f"l{n}" for n in range(7)]
