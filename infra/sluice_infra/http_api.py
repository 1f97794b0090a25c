"""The HTTP API in front of the `api` function: IAM (SigV4) authorization on every route, JSON
access logs, and stage-wide throttling."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsii
from aws_cdk import aws_apigateway as rest_apigateway
from aws_cdk import aws_apigatewayv2 as apigateway
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .routes import GATEWAY_ROUTES

#: HTTP APIs serve a single `$default` stage at the API's root URL.
STAGE_NAME = "$default"

#: One JSON object per request (HTTP API `$context` variables), with short keys: every line is
#: billed per byte ingested (issue 20). What an operator needs to trace a request: `id` (the
#: functions' `correlation_id`), `t` (request time, epoch ms), `m` + `p` (method and path, which
#: names the run), `s` (status), `ms` (latency), `err` (the integration's error, "-" if none)
#: and `who` (the IAM principal that signed it: who did what, for audits). docs/operations.md
#: lists them; the saved queries and the 429 metric filter read them.
ACCESS_LOG_FIELDS = {
    "id": "$context.requestId",
    "t": "$context.requestTimeEpoch",
    "m": "$context.httpMethod",
    "p": "$context.path",
    "s": "$context.status",
    "ms": "$context.responseLatency",
    "err": "$context.integrationErrorMessage",
    "who": "$context.identity.userArn",
}


@dataclass(frozen=True)
class Throttle:
    """Stage-wide request rate (steady, per second) and burst. The defaults are sized for 1,000
    concurrent runs (`capacity.api_requests_per_second`, README "Capacity")."""

    rate_per_second: int = 500
    burst: int = 1_000


@jsii.implements(apigateway.IAccessLogSettings)
class _JsonAccessLogs:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigateway.LogGroupLogDestination(log_group)
        # Compact: the template is written verbatim, so a space after each "," and ":" would be
        # two bytes more per field of every line.
        self._format = rest_apigateway.AccessLogFormat.custom(
            json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))

    @property
    def destination(self) -> apigateway.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> rest_apigateway.AccessLogFormat:
        return self._format


class ControlPlaneApi(Construct):
    """The HTTP API: every route of `routes.GATEWAY_ROUTES` integrated with the api function
    and authorized by IAM; `invoke_arn()` names one request for a policy."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction,
                 access_log_group: logs.ILogGroup, throttle: Throttle) -> None:
        super().__init__(scope, construct_id)
        self.http_api = apigateway.HttpApi(
            self, "HttpApi",
            description="Sluice control plane API (SigV4-signed requests only)",
            create_default_stage=False,
            default_authorizer=authorizers.HttpIamAuthorizer(),
        )
        self.stage = apigateway.HttpStage(
            self, "DefaultStage",
            http_api=self.http_api,
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigateway.ThrottleSettings(rate_limit=throttle.rate_per_second,
                                                 burst_limit=throttle.burst),
            access_log_settings=_JsonAccessLogs(access_log_group),
        )
        integration = integrations.HttpLambdaIntegration(
            "Api", function, payload_format_version=apigateway.PayloadFormatVersion.VERSION_2_0)
        for route in GATEWAY_ROUTES:
            method = getattr(apigateway.HttpMethod, route.method)
            self.http_api.add_routes(path=route.path, methods=[method], integration=integration)

    @property
    def url(self) -> str:
        """The API's base URL (ends with "/")."""
        return self.stage.url

    def invoke_arn(self, method: str, path: str) -> str:
        """The `execute-api:Invoke` resource of one request (IAM wildcards allowed in `path`)."""
        return self.http_api.arn_for_execute_api(method, path, STAGE_NAME)
