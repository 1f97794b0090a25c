"""Saved CloudWatch Logs Insights queries (Logs Insights, "Saved queries", folder `<prefix>/`).

The functions' lines carry `flow_run_id`, `deployment_id` and `pool` keys (Powertools Logger,
`sluice_functions.handlers.log_keys`); the API access log (`http_api.ACCESS_LOG_FIELDS`: `p`
path, `m` method, `s` status, `who` caller) names the run in its path; a run's own log lines are
the log stream named after its id in the run log group.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_logs as logs
from constructs import Construct

#: Replace it with the run's id before running "why did run X fail".
RUN_ID_PLACEHOLDER = "RUN_ID"

WHY_DID_RUN_FAIL = "\n".join((
    "fields @timestamp, @log, level, message, m, p, s, err, flow_run_id, pool",
    f'| filter flow_run_id = "{RUN_ID_PLACEHOLDER}" or @logStream = "{RUN_ID_PLACEHOLDER}"'
    f' or p like "{RUN_ID_PLACEHOLDER}"',
    "| sort @timestamp asc",
    "| limit 1000",
))
#: From the first to the last API request naming the run (create or claim to its final state);
#: a saved query keeps no time range: choose "today" (or any range) when running it.
SLOWEST_RUNS_TODAY = "\n".join((
    r"parse p /\/flow-runs\/(?<run>[^\/]+)/",
    "| filter ispresent(run)",
    "| stats (max(@timestamp) - min(@timestamp)) / 1000 as seconds, count(*) as requests"
    " by run",
    "| sort seconds desc",
    "| limit 50",
))
#: The route: the path's family and action (`/flow-runs/<id>/claim` -> flow-runs claim), ids
#: left out so that one route is one row.
ERRORS_BY_ROUTE = "\n".join((
    "filter s like /^[45]/",
    r"| parse p /^\/(?<family>[^\/]+)(\/[^\/]+)?(\/(?<action>[^\/]+))?/",
    "| stats count(*) as requests by m, family, action, s",
    "| sort requests desc",
))
THROTTLED_REQUESTS = "\n".join((
    'filter s = "429"',
    r"| parse p /^\/(?<family>[^\/]+)/",
    "| stats count(*) as throttled by bin(1m) as minute, family, who",
    "| sort minute desc",
))


class SavedQueries(Construct):
    """The saved queries, each on the log groups it reads."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str,
                 function_log_groups: Sequence[logs.ILogGroup], run_log_group: logs.ILogGroup,
                 access_log_group: logs.ILogGroup) -> None:
        super().__init__(scope, construct_id)
        self.definitions: dict[str, logs.QueryDefinition] = {}
        for name, query, groups in (
            ("why did run X fail", WHY_DID_RUN_FAIL,
             [*function_log_groups, run_log_group, access_log_group]),
            ("slowest runs today", SLOWEST_RUNS_TODAY, [access_log_group]),
            ("errors by route", ERRORS_BY_ROUTE, [access_log_group]),
            ("throttled requests", THROTTLED_REQUESTS, [access_log_group]),
        ):
            self.definitions[name] = logs.QueryDefinition(
                self, name.title().replace(" ", ""),
                query_definition_name=f"{prefix}/{name}",
                query_string=_RawQuery(query), log_groups=list(groups))


class _RawQuery(logs.QueryString):
    """A query written out as text (`QueryString`'s builder has no `parse` with a regex)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def to_string(self) -> str:
        return self._text
