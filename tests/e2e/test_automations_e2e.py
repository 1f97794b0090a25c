"""Automations end to end: a real embedded server and worker, the CLI, and a local HTTP server
standing in for the webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .harness import created_id, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
SIGNING_KEY = "e2e-signing-key"


class Receiver:
    """An HTTP server on localhost keeping every POST (body and headers)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_a_failed_run_posts_a_signed_webhook(sluice, receiver, tmp_path):
    # Given the webhook URL and signing key as secrets, and an automation from a YAML file
    sluice.cli("secret", "set", "e2e-hook", "--value", receiver.url)
    sluice.cli("secret", "set", "e2e-hook-key", "--value", SIGNING_KEY)
    spec = tmp_path / "on-failure.yaml"
    spec.write_text(
        "name: webhook on failure\n"
        "trigger:\n"
        "  type: reactive\n"
        "  match: {names: ['sluice.flow-run.Failed']}\n"
        "actions:\n"
        "  - type: notify\n"
        "    via: webhook\n"
        "    url_secret: e2e-hook\n"
        "    hmac_secret: e2e-hook-key\n"
        "    body: 'run {{ event.resource.name }} failed: {{ event.payload.message }}'\n")
    created = sluice.cli("automation", "create", "--file", str(spec)).stdout
    assert "webhook on failure" in created
    listed = sluice.cli_json("automation", "ls")
    assert [a["name"] for a in listed] == ["webhook on failure"]

    # When a deployment's run fails on a worker
    sluice.cli("deploy", "flows.py:failing_flow", "--name", "fails",
               "--project-dir", str(PROJECT))
    sluice.start_worker()
    run_id = created_id(sluice.cli("deployment", "run", "failing-flow/fails").stdout)
    assert sluice.wait_terminal(run_id, timeout=90)["state"]["type"] == "FAILED"

    # Then the receiver got one POST about that run, signed with the key
    wait_for(lambda: receiver.received, 30, "the webhook to arrive")
    body, headers = receiver.received[0]
    expected = hmac.new(SIGNING_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-sluice-signature"] == f"sha256={expected}"
    message = json.loads(body)
    assert message["event"]["name"] == "sluice.flow-run.Failed"
    assert message["event"]["resource"]["id"] == run_id
    assert "this flow fails on purpose" in message["message"]
    assert len(receiver.received) == 1


def test_automations_are_managed_from_the_cli(sluice, tmp_path):
    spec = tmp_path / "nightly.json"
    spec.write_text(json.dumps({
        "name": "nightly late",
        "trigger": {"type": "proactive", "daily_at": "03:00", "timezone": "Europe/Berlin",
                    "expect": {"names": ["sluice.flow-run.Completed"],
                               "related": ["deployment:etl/nightly"]}},
        "actions": [{"type": "notify", "via": "sns",
                     "topic_arn": "arn:aws:sns:eu-central-1:123456789012:alerts"}]}))
    automation_id = sluice.cli_json("automation", "create", "--file", str(spec))["id"]
    sluice.cli("automation", "pause", automation_id)
    assert sluice.cli_json("automation", "ls")[0]["enabled"] is False
    sluice.cli("automation", "resume", automation_id)
    assert json.loads(sluice.cli("automation", "inspect", automation_id).stdout)["enabled"]
    sluice.cli("automation", "delete", automation_id)
    assert sluice.cli_json("automation", "ls") == []
    missing = sluice.cli("automation", "inspect", automation_id, check=False)
    assert missing.returncode != 0 and "sluice automation ls" in missing.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrigger: {type: reactive, threshold: 5}\n"
                   "actions: [{type: cancel-run}]\n")
    refused = sluice.cli("automation", "create", "--file", str(bad), check=False)
    assert refused.returncode != 0 and "within_seconds" in refused.stderr


def test_an_s3_style_event_starts_a_run_with_the_templated_parameter(sluice, tmp_path):
    # Given a deployment and an automation running it when an object lands
    sluice.cli("deploy", "flows.py:stamp", "--name", "on-upload",
               "--project-dir", str(PROJECT))
    spec = tmp_path / "on-upload.yaml"
    spec.write_text(
        "name: run on upload\n"
        "trigger: {type: reactive, match: {names: ['s3.object-created']}}\n"
        "actions:\n"
        "  - type: run-deployment\n"
        "    deployment: stamp/on-upload\n"
        "    parameters: {ledger: '{{ event.payload.detail.object.key }}'}\n")
    sluice.cli("automation", "create", "--file", str(spec))
    # When an S3-style event is emitted from the CLI
    sluice.cli("events", "emit", "s3.object-created", "--resource", "s3-object:bucket/in/a.csv",
               "--payload", json.dumps({"detail": {"object": {"key": "in/a.csv"}}}))
    # Then a run of the deployment exists with the key as its parameter
    runs = sluice.cli_json("flow-run", "ls")
    assert [(r["flow_name"], r["parameters"]) for r in runs] == [("stamp", {"ledger": "in/a.csv"})]
