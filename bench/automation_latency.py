"""Event -> action latency of automations on the embedded server (in process, real HTTP).

    python bench/automation_latency.py [--n 50]

Starts an embedded server on a free port, a local HTTP receiver standing in for a webhook, and
one automation: "on `bench.ping`, notify the webhook (HMAC-signed)". Each of `n` events is
posted to `POST /events` and timed from just before the request until the receiver has the
webhook. Prints p50/p95 in milliseconds and records them in bench/results.json
(`automation_latency`). Reactive automations act on the server's automations thread
(`ThreadDispatcher`), after the request that recorded the event has answered: the figure is one
event write, the hand-over to that thread and one webhook POST on localhost. The request's own
latency (`request_p50_ms`, `request_p95_ms`) no longer includes the webhook.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import median, percentile, record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="events to time")
    parser.add_argument("--hook-delay-ms", type=float, default=0.0,
                        help="how long the webhook receiver takes to answer (a slow webhook)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SLUICE_HOME"] = str(Path(tmp) / "home")
        latencies, requests = measure(Path(tmp), args.n, hook_delay=args.hook_delay_ms / 1000)
    figures = {"events": args.n, "dispatcher": "thread", "hook_delay_ms": args.hook_delay_ms,
               "p50_ms": round(median(latencies), 2),
               "p95_ms": round(percentile(latencies, 95), 2),
               "max_ms": round(max(latencies), 2),
               "request_p50_ms": round(median(requests), 2),
               "request_p95_ms": round(percentile(requests, 95), 2)}
    print(f"event -> webhook received over {args.n} events: p50 {figures['p50_ms']} ms, "
          f"p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms")
    print(f"POST /events answered: p50 {figures['request_p50_ms']} ms, "
          f"p95 {figures['request_p95_ms']} ms")
    record("automation_latency", figures)


def measure(tmp: Path, n: int, *, hook_delay: float = 0.0) -> tuple[list[float], list[float]]:
    """(event -> webhook received, event -> request answered) in milliseconds, per event."""
    import httpx

    from sluice.secrets import LocalSecretStore
    from sluice.settings import get_settings
    from sluice_functions.embedded.server import EmbeddedServer

    arrived: dict[str, float] = {}
    got_one = threading.Condition()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            import json

            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with got_one:
                arrived[body["event"]["resource"]["id"]] = time.perf_counter()
                got_one.notify_all()
            time.sleep(hook_delay)  # the webhook's own work, after it has the event
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secrets = LocalSecretStore(get_settings().home / "secrets")
    secrets.set("bench-hook", f"http://127.0.0.1:{receiver.server_address[1]}/hook")
    secrets.set("bench-key", "bench-signing-key")
    server = EmbeddedServer(data_dir=tmp / "data", port=0, token=None).start()
    latencies: list[float] = []
    requests: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            api.post("/automations", json={
                "name": "bench", "trigger": {"type": "reactive",
                                             "match": {"names": ["bench.ping"]}},
                "actions": [{"type": "notify", "via": "webhook", "url_secret": "bench-hook",
                             "hmac_secret": "bench-key"}]}).raise_for_status()
            for i in range(n):
                ident = f"ping-{i}"
                started = time.perf_counter()
                api.post("/events", json={"events": [{
                    "name": "bench.ping", "resource": {"kind": "bench", "id": ident}}]}
                         ).raise_for_status()
                requests.append((time.perf_counter() - started) * 1000)
                with got_one:
                    got_one.wait_for(lambda: ident in arrived, timeout=30)
                if ident not in arrived:
                    raise SystemExit(f"no webhook for {ident} within 30 s")
                latencies.append((arrived[ident] - started) * 1000)
    finally:
        server.stop()
        receiver.shutdown()
    return latencies, requests


if __name__ == "__main__":
    main()
