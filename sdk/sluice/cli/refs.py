"""How commands name runs: a flow run or a task run by its id, a unique start or end of the id
(the short id tables show is its end) or its name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exceptions import Conflict, NotFound

#: The help text of every argument that names a flow run.
FLOW_RUN_REF_HELP = ("Flow run id, a unique start or end of it (the short id in listings), or "
                     "the run's name.")
#: The help text of every argument that names a task run of a flow run.
TASK_RUN_REF_HELP = ("Task run id, a unique start or end of it (the short id in listings), or "
                     "its name in the flow run (e.g. extract-3).")
#: Fewest characters of an id a prefix or suffix must have to name a task run.
MIN_ID_PART = 4
#: Most candidates an ambiguous reference lists.
_SHOWN_CANDIDATES = 5


def resolve_run(api: Any, ref: str) -> Any:
    """The flow run `ref` names (full id, unique id prefix, unique id suffix of 6 or more
    characters, or the run's name), via the control plane; raises NotFound, or Conflict listing
    the candidates when it names several runs."""
    return api.resolve_flow_run(ref.strip())


def resolve_task_run(task_runs: Sequence[Any], ref: str, flow_run_label: str) -> Any:
    """The task run of `task_runs` (one flow run's) that `ref` names: its id, its name
    ("extract-3"), or a unique start or end of its id (4 characters or more)."""
    wanted = ref.strip()
    for pick in (lambda t: t.id == wanted, lambda t: t.name == wanted):
        exact = [t for t in task_runs if pick(t)]
        if len(exact) == 1:
            return exact[0]
    lowered = wanted.lower()
    partial = [t for t in task_runs if len(lowered) >= MIN_ID_PART
               and (t.id.lower().startswith(lowered) or t.id.lower().endswith(lowered))]
    if len(partial) == 1:
        return partial[0]
    if partial:
        listed = ", ".join(f"{t.id[-8:]} ({t.name})" for t in partial[:_SHOWN_CANDIDATES])
        more = len(partial) - _SHOWN_CANDIDATES
        raise Conflict(f"{wanted!r} matches {len(partial)} task runs of {flow_run_label}: "
                       f"{listed}{f' and {more} more' if more > 0 else ''}; give more of the id "
                       "or the task run's name")
    names = ", ".join(t.name for t in task_runs[:_SHOWN_CANDIDATES]) or "none"
    more = len(task_runs) - _SHOWN_CANDIDATES
    raise NotFound(f"flow run {flow_run_label} has no task run {wanted!r}: give its name or id "
                   f"(its task runs: {names}{f' and {more} more' if more > 0 else ''}; see "
                   f"`sluice task-run ls {flow_run_label}`)")
