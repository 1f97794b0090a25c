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

#: One JSON object per request (HTTP API `$context` variables). `caller` is the IAM principal
#: that signed the request: who did what, for audits.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.userArn",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
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
        self._format = rest_apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS))

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
