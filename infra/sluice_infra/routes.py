"""Which HTTP API routes the stack exposes (who may call which: `sluice_functions.access`).

API Gateway sends each route family to the one `api` function, whose Powertools resolver does
the fine routing and answers 404 itself. Families, not one route per API path, because an HTTP
API refuses sibling path variables with different names (`/deployments/{deployment_id}` beside
`/deployments/{flow_name}/{name}`), and because a family keeps the gateway in step with the API
when a route is added. Unknown top-level paths are refused by the gateway without invoking
Lambda. tests/infra checks that every path of the API's OpenAPI document falls in a family.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayRoute:
    """One HTTP API route: a method ("ANY" for all) and a path (`{proxy+}` is greedy)."""

    method: str
    path: str


ROUTE_FAMILIES = ("flow-runs", "deployments", "pools", "bundles", "stats", "automations",
                  "events")

GATEWAY_ROUTES: tuple[GatewayRoute, ...] = (
    GatewayRoute("GET", "/health"),
    GatewayRoute("GET", "/openapi.json"),
    *(route for family in ROUTE_FAMILIES for route in (
        GatewayRoute("ANY", f"/{family}"),
        GatewayRoute("ANY", f"/{family}/{{proxy+}}"),
    )),
)
