"""`GET /openapi.json` and `GET /health`."""

from __future__ import annotations

import sluice


def test_openapi_document_describes_the_request_and_response_models(api):
    answer = api.get("/openapi.json")
    assert answer.status == 200
    document = answer.json
    assert document["info"] == {"title": "Sluice control plane", "version": sluice.__version__}
    create = document["paths"]["/flow-runs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FlowRunCreate"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FlowRun"}


def test_openapi_documents_every_error_answer_as_the_error_body(api):
    document = api.get("/openapi.json").json
    claim = document["paths"]["/flow-runs/{flow_run_id}/claim"]["post"]["responses"]
    for status in ("404", "409", "413", "422", "429", "503"):
        assert claim[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}, status
    assert set(document["components"]["schemas"]["ErrorBody"]["properties"]) == {
        "error", "message", "details"}


def test_openapi_documents_the_path_and_query_bounds(api):
    document = api.get("/openapi.json").json
    parameters = {p["name"]: p for p in document["paths"]["/flow-runs"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 200
    assert set(parameters) == {"flow_name", "deployment_id", "pool", "state_type",
                               "scheduled_after", "scheduled_before", "tag",
                               "parent_flow_run_id", "limit", "cursor"}


def test_health_reports_the_version(api):
    answer = api.get("/health")
    assert answer.json == {"status": "ok", "version": sluice.__version__}
    assert api.writes == []
