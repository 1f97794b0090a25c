"""How much Lambda itself logs for the control-plane functions (`sluice:lambdaSystemLogs`).

The functions use Lambda's JSON log format, so Lambda filters its own "system" lines by level.
At INFO it writes a `platform.start` and a `platform.report` line for every invocation (about
430 bytes with CloudWatch's per-event overhead, all of a short flow run's function log bytes,
billed per byte ingested, and two lines a minute per tick function when idle). At WARN only its
warning lines remain. Lambda's own metrics (Invocations, Duration, Errors, Throttles), which
the alarms and the dashboard read, do not depend on this level, nor do the functions' own lines
(Powertools, `application_log_level`).
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

SYSTEM_LOGS_INFO = "info"
SYSTEM_LOGS_WARN = "warn"
#: The choices of `sluice:lambdaSystemLogs` and the level each sets.
SYSTEM_LOG_LEVELS = {
    SYSTEM_LOGS_INFO: lambda_.SystemLogLevel.INFO,
    SYSTEM_LOGS_WARN: lambda_.SystemLogLevel.WARN,
}
#: WARN by default: the per-invocation report lines are the only function log lines of a
#: healthy request, and what operators watch (errors, throttles, duration) is in metrics and
#: in the functions' own ERROR lines. `info` brings back each invocation's duration, memory
#: used and cold-start time in the logs (memory tuning, cold-start hunting).
DEFAULT_SYSTEM_LOGS = SYSTEM_LOGS_WARN


def system_log_level(choice: str) -> lambda_.SystemLogLevel:
    """The Lambda system log level of a `sluice:lambdaSystemLogs` choice ("info" or "warn")."""
    try:
        return SYSTEM_LOG_LEVELS[choice]
    except KeyError:
        raise ValueError(f"lambda system logs {choice!r} must be one of "
                         f"{', '.join(SYSTEM_LOG_LEVELS)}") from None
