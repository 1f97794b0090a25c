"""Stalled and slow clients cannot pin the embedded server's threads: per-connection deadlines
and a bound on concurrent connections (issue 13: 400 stalled connections held 400 threads)."""

from __future__ import annotations

import socket
import time

import boto3
import httpx
import pytest

from sluice_functions.embedded import EmbeddedServer
from sluice_functions.embedded.network import ConnectionLimits

from .server_network_support import (
    TOKEN,
    eventually,
    exchange,
    handler_threads,
    read_until_closed,
)

AUTH = f"authorization: Bearer {TOKEN}\r\n".encode()


def start(tmp_path, **limits) -> EmbeddedServer:
    return EmbeddedServer(data_dir=tmp_path / "data", port=0, token=TOKEN, tick_seconds=3600,
                          limits=ConnectionLimits(**limits)).start()


@pytest.fixture
def stalled():
    """Client sockets the test opens; all closed at the end."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def test_stalled_connections_hold_at_most_the_bound_of_threads(tmp_path, stalled):
    # Given a server bounded to 8 connections that waits 2 s for a request
    server = start(tmp_path, max_connections=8, idle_timeout=2, head_timeout=2)
    try:
        before = handler_threads()
        # When 20 clients connect and stall (half of them after a partial request line)
        for i in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:
                sock.sendall(b"GET /hea")
            stalled.append(sock)
        # Then the server never runs more than 8 connection threads for them
        for _ in range(10):
            assert handler_threads() - before <= 8
            time.sleep(0.05)
        # And every stalled connection is closed by the server: refused with a 503 over the
        # bound, or dropped after its deadline
        answers = [read_until_closed(sock, timeout=20) for sock in stalled]
        assert any(answer.status == 503 for answer in answers)  # the 12 over the bound
        for answer in answers:
            assert answer.status in (None, 503), answer.data[:200]
            if answer.status == 503:
                assert answer.json()["error"] == "service_unavailable"
        # And once they are gone the threads are too, and a normal request is served
        eventually(lambda: handler_threads() <= before, what="connection threads to end")
        health = httpx.get(f"{server.url}/health", headers={"authorization": f"Bearer {TOKEN}"})
        assert health.status_code == 200
    finally:
        server.stop()


def test_a_connection_over_the_bound_is_refused_at_once(tmp_path, stalled):
    # Given a server bounded to 2 connections, both held by idle clients (60 s idle deadline)
    server = start(tmp_path, max_connections=2, idle_timeout=60)
    try:
        before = handler_threads()
        stalled.extend(socket.create_connection(("127.0.0.1", server.port)) for _ in range(2))
        eventually(lambda: handler_threads() - before == 2, what="two connection threads")
        # When a third client sends a request that would create a pool
        request = (b"POST /pools HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                   + AUTH + b'content-length: 16\r\n\r\n{"name": "busy"}')
        answer = exchange(server.port, request, timeout=20)
        # Then it is refused long before any idle deadline (a 503 JSON, or a closed
        # connection if the refusal raced the request), without a thread of its own
        assert answer.status in (None, 503), answer.data[:200]
        if answer.status == 503:
            assert b"retry-after: 1" in answer.data.lower()
        assert handler_threads() - before == 2
        # And nothing was created; once a slot frees, requests are served again
        for sock in stalled:
            sock.close()
        eventually(lambda: handler_threads() <= before, what="the idle threads to end")
        names = httpx.get(f"{server.url}/pools", headers={"authorization": f"Bearer {TOKEN}"})
        assert "busy" not in names.text
    finally:
        server.stop()


def test_a_client_trickling_its_headers_is_dropped_at_the_head_deadline(tmp_path):
    # Given a server that gives a request head 1 s (and a connection 30 s to start one)
    server = start(tmp_path, head_timeout=1, idle_timeout=30)
    try:
        before = handler_threads()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            # When a client sends its headers a byte every 0.1 s, for up to 30 s
            sent = 0
            closed = False
            for byte in (b"GET /health HTTP/1.1\r\n" + b"x-slow: " + b"a" * 400):
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                sent += 1
                sock.settimeout(0.1)
                try:
                    if sock.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
            # Then the server closed the connection long before the head was complete
            assert closed and sent < 400
        eventually(lambda: handler_threads() <= before, what="the thread to end")
    finally:
        server.stop()


def test_a_body_that_stops_coming_gets_a_408(tmp_path):
    # Given a server that waits 1 s between pieces of a body
    server = start(tmp_path, body_timeout=1)
    try:
        # When an authorized client announces 20 bytes, sends 2, and stalls
        request = (b"POST /pools HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                   + AUTH + b"content-length: 20\r\n\r\n{}")
        answer = exchange(server.port, request, half_close=False, timeout=20)
        # Then it gets a JSON 408 and the connection is closed; nothing was created
        assert answer.status == 408, answer.data[:200]
        assert answer.json()["error"] == "request_timeout"
        pools = httpx.get(f"{server.url}/pools", headers={"authorization": f"Bearer {TOKEN}"})
        assert len(pools.json()["items"] if isinstance(pools.json(), dict) else pools.json()) == 1
    finally:
        server.stop()


def test_a_long_poll_outlives_every_read_deadline(tmp_path):
    # Given deadlines of 0.5 s for reading requests
    server = start(tmp_path, head_timeout=0.5, body_timeout=0.5, idle_timeout=0.5)
    try:
        sqs = boto3.client("sqs", endpoint_url=server.sqs_endpoint, region_name="us-east-1",
                           aws_access_key_id="sluice", aws_secret_access_key=TOKEN)
        url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
        # When a worker long-polls an empty queue for 2 s (the server waits, not the client)
        answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
        # Then the poll ends normally, with no message, and the next call works too
        assert answer.get("Messages", []) == []
        assert sqs.get_queue_url(QueueName="default")["QueueUrl"] == url
    finally:
        server.stop()


def test_limits_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_connections"):
        ConnectionLimits(max_connections=0)
    with pytest.raises(ValidationError, match="head_timeout"):
        ConnectionLimits(head_timeout=-1)
