"""Issue 13, names: every user-chosen name (deployment, flow, pool, tag, schedule id, worker,
run) is refused by the API when it holds a path separator, a path segment, a control, bidi or
invisible character, or (pools) would be another pool's dead-letter queue; the answer is a 422
naming the field and the character (escaped), and nothing is written. Records stored before
the rules are still listed, read and deleted."""

from __future__ import annotations

import pytest

from sluice.models import Deployment, PoolCreate

from .names_support import GOOD_DEPLOYMENT, api  # noqa: F401 - the fixture

#: (name, what the refusal must show): the attacks of the issue and their neighbours.
BAD_NAMES = [
    ("x/y", "'/'"),                       # deployments are addressed as flow/name
    ("..", "path segments"),
    (".", "path segments"),
    (".hidden", "path segments"),
    ("evil\x1b[2J\x1b[31m", "\\x1b"),      # clears and recolours the terminal of `ls`
    ("two\r\nlines", "\\x0d"),
    ("nul\x00byte", "\\x00"),
    ("rtl\u202egpj.exe", "\\u202e"),       # displays as "exe.jpg"
    ("isolate\u2066x", "\\u2066"),
    ("zero\u200bwidth", "\\u200b"),
    ("c1\x85next-line", "\\x85"),
    ("del\x7f", "\\x7f"),
    ("раypal", "non-ASCII"),              # Cyrillic look-alikes
    (" padded", "space"),
    ("x" * 257, "413"),
]


@pytest.mark.parametrize(("bad", "shown"), BAD_NAMES)
@pytest.mark.parametrize("field", ["name", "flow_name"])
def test_a_bad_deployment_or_flow_name_is_refused_and_nothing_is_written(api, field, bad,
                                                                         shown):
    # Given a deployment body whose name (or flow name) is an attack
    body = {**GOOD_DEPLOYMENT, field: bad}
    # When it is deployed
    answer = api.post("/deployments", body)
    # Then it is refused naming the field and the character, and nothing is stored or created
    if shown == "413":
        assert answer.status == 413, answer.json
    else:
        assert answer.status == 422, answer.json
        assert answer.json["message"].startswith(f"body.{field}: "), answer.json
        assert shown in answer.json["message"], answer.json["message"]
    assert bad not in answer.json["message"] or bad.isprintable()  # never echoed raw
    assert api.writes == []
    assert api.get("/deployments").json["items"] == []


@pytest.mark.parametrize("bad", ["default-dlq", "etl-dlq", "-lead", "UPPER", "a_b", "x" * 41])
def test_a_pool_name_that_is_another_pools_queue_or_no_queue_name_is_refused(api, bad):
    # Given pool names that SQS would map onto the dead-letter queue `<prefix>-default-dlq`
    # (or that are not queue names at all)
    # When the pool is created directly, or through a deployment
    direct = api.post("/pools", {"name": bad})
    via_deployment = api.post("/deployments", {**GOOD_DEPLOYMENT, "pool": bad})
    # Then both are refused and no queue or record exists
    for answer in (direct, via_deployment):
        assert answer.status in (413, 422), answer.json
    if bad.endswith("-dlq"):
        assert "dead-letter queue of pool" in direct.json["message"], direct.json
    assert api.writes == []
    assert api.get("/pools").json["items"] == []


def test_pool_names_ending_in_dlq_lookalikes_are_still_fine(api):
    # Given names that merely contain "dlq"
    for name in ("dlq", "dlq-workers", "my-dlqx"):
        # When they are created Then they are pools with their own queues
        assert api.post("/pools", {"name": name}).status == 200, name
    queues = {p["queue_url"] for p in api.get("/pools").json["items"]}
    dead_letters = {p["dlq_url"] for p in api.get("/pools").json["items"]}
    assert len(queues) == 3 and not queues & dead_letters


@pytest.mark.parametrize("bad", ["bad\x1btag", "rtl\u202e", "", "x" * 129, "new\nline"])
def test_a_bad_tag_is_refused_everywhere_it_enters(api, bad):
    # Given a deployment, When a bad tag arrives by deploy, update, trigger or script run
    deployment = api.deployment()
    api.writes.clear()
    answers = [
        api.post("/deployments", {**GOOD_DEPLOYMENT, "tags": ["ok", bad]}),
        api.patch(f"/deployments/{deployment['id']}", {"tags": [bad]}),
        api.post(f"/deployments/{deployment['id']}/runs", {"tags": [bad]}),
        api.post("/flow-runs", {"flow_name": "script", "tags": [bad]}),
    ]
    # Then each is refused and nothing is written
    assert [a.status for a in answers if a.status not in (413, 422)] == []
    assert api.writes == []


@pytest.mark.parametrize(("path", "body"), [
    ("/flow-runs", {"flow_name": "a/b"}),
    ("/flow-runs", {"flow_name": "ok", "name": "run\x1b]0;pwned\x07"}),
    ("/flow-runs", {"flow_name": "ok", "id": "../../x"}),
    ("/flow-runs", {"flow_name": "ok", "parameters": {"key\x1b[31m": 1}}),
    ("/pools/etl/workers", {"name": "worker\u202e"}),
    ("/pools/etl/workers", {"name": "w1", "host": "host\x1b[2J"}),
])
def test_other_names_are_refused_where_they_enter(api, path, body):
    # Given the pool etl exists
    api.deployment()
    api.writes.clear()
    # When a run, worker or parameter name is an attack
    answer = api.post(path, body)
    # Then it is refused and nothing is written
    assert answer.status == 422, answer.json
    assert api.writes == []


def test_a_bad_schedule_id_is_refused(api):
    # Given a schedule whose id (it names the schedule's runs) holds an ESC sequence
    body = {**GOOD_DEPLOYMENT, "schedules": [{"id": "hourly\x1b[8m", "cron": "0 * * * *"}]}
    # When it is deployed Then it is refused and nothing is written
    answer = api.post("/deployments", body)
    assert answer.status == 422 and "schedule id" in answer.json["message"], answer.json
    assert api.writes == []


def test_path_lookups_refuse_control_characters_without_writing(api):
    # Given a deployment
    api.deployment()
    api.writes.clear()
    # When it is looked up or run under a name with a control character (percent-encoded)
    answers = [api.get("/deployments/etl/night%1Bly"), api.get("/pools/de%1Bfault"),
               api.post("/deployments/etl/nightly%00/runs", {}),
               api.get("/deployments", query={"flow_name": "etl\x1b"})]
    # Then no route answers with a record and nothing is written
    assert all(400 <= a.status < 500 for a in answers), [a.status for a in answers]
    assert api.writes == []


def test_records_stored_under_old_rules_are_still_listed_read_and_deleted(api):
    # Given a deployment and a pool stored before the name rules (written past the API)
    legacy = Deployment.model_validate({
        "id": "legacy-1", "flow_name": "etl", "name": "x/\x1b[31mred", "entrypoint": "/abs.py:f",
        "pool": "default-dlq", "tags": ["\u202etag"],
        "source": {"kind": "git", "repository": "--upload-pack=x", "subdirectory": "../.."}})
    api.ports.store.upsert_deployment(legacy)
    api.ports.store.upsert_pool(PoolCreate.model_construct(name="old-dlq"))
    # When they are listed and read Then they are shown as stored
    listed = api.get("/deployments")
    assert listed.status == 200 and listed.json["items"][0]["name"] == "x/\x1b[31mred"
    assert api.get("/deployments/legacy-1").status == 200
    pools = api.get("/pools")
    assert pools.status == 200 and "old-dlq" in [p["name"] for p in pools.json["items"]]
    assert api.get("/pools/old-dlq").status == 200  # `sluice pool ls` inspects each one
    # And the deployment can be removed by its id
    assert api.delete("/deployments/legacy-1").status == 204


def test_valid_names_are_accepted(api):
    # Given names inside the rules, When they are used Then they are accepted
    body = {**GOOD_DEPLOYMENT, "flow_name": "Nightly ETL_v2.1", "name": "prod-eu.west",
            "tags": ["env:prod", "team/data", "owner=ana@example.com", "tier+1"],
            "schedules": [{"id": "hourly-berlin", "cron": "0 * * * *"}]}
    answer = api.post("/deployments", body)
    assert answer.status == 200, answer.json
    assert api.get("/deployments/Nightly ETL_v2.1/prod-eu.west").status == 200
