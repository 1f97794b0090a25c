"""`--watch`: a run's log lines and state changes as they happen, the final state last."""

from __future__ import annotations

import time
from typing import Any

from .output import console, errors, short_id, styled_state

#: Polling starts quick (a run that takes a second shows at once) and backs off while nothing
#: happens, so a long watched run costs a few requests a minute, not three a second.
FIRST_POLL_SECONDS, MAX_POLL_SECONDS = 0.3, 3.0


class TaskRunNames:
    """Names of a run's task runs ("extract-3") for log lines that carry only their ids; read
    again only when a line names a task run not seen yet."""

    def __init__(self, api: Any, flow_run_id: str) -> None:
        self._api, self._flow_run_id = api, flow_run_id
        self._known: dict[str, Any] = {}

    def label(self, task_run_id: str | None) -> str:
        if task_run_id is None:
            return ""
        if task_run_id not in self._known:
            self._known.update((t.id, t) for t in self._api.all_task_runs(self._flow_run_id))
        task_run = self._known.get(task_run_id)
        if task_run is None:
            return f" [{short_id(task_run_id)}]"
        attempt = f" #{task_run.run_count}" if task_run.run_count > 1 else ""
        return f" [{task_run.name}{attempt}]"


def state_line(run: Any) -> str:
    """`12:00:01 Running (attempt 2) — message`."""
    attempt = f" (attempt {run.run_count})" if run.run_count > 1 else ""
    message = f" — {run.state.message}" if run.state.message else ""
    return f"{time.strftime('%H:%M:%S')} {styled_state(run.state)}{attempt}{message}"


def watch_run(api: Any, flow_run_id: str, *, poll: float = FIRST_POLL_SECONDS) -> Any:
    """Print state changes and log lines until the run ends (log lines before the state that
    follows them, the final state last); return the final run."""
    names = TaskRunNames(api, flow_run_id)
    cursor, last_shown, delay = None, None, poll
    while True:
        run_now = api.get_flow_run(flow_run_id)  # first: every line written before it is read
        cursor, printed = _print_new_lines(api, flow_run_id, cursor, names)
        shown = (run_now.state.name, run_now.run_count, run_now.state.message)
        changed = shown != last_shown
        if changed:
            last_shown = shown
            console.print(state_line(run_now), highlight=False)
        if run_now.state.is_terminal:
            if not run_now.state.is_completed():
                errors.print(f"run ended {run_now.state.name}", highlight=False)
            return run_now
        delay = poll if (printed or changed) else min(delay * 1.5, MAX_POLL_SECONDS)
        time.sleep(delay)


def _print_new_lines(api: Any, flow_run_id: str, cursor: str | None,
                     names: TaskRunNames) -> tuple[str | None, int]:
    printed = 0
    while True:
        page = api.read_logs(flow_run_id, cursor=cursor, limit=200)
        cursor = page.next_cursor or cursor
        for line in page.items:
            console.print(f"{line.timestamp.astimezone():%H:%M:%S} {line.level.value:<7}"
                          f"{names.label(line.task_run_id)} {line.message}",
                          highlight=False, markup=False)
        printed += len(page.items)
        if not page.items:
            return cursor, printed
