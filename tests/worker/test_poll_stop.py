"""A worker's long poll gives way to stop(): nothing received is kept or lost."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sluice_worker.queue import PoolQueue


class SlowSqs:
    """Answers a receive only when `release` is set (an SQS long poll on an empty queue)."""

    def __init__(self, messages: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.messages, self.error = messages, error
        self.visible_again: list[str] = []
        self.receives = 0
        self.returned = threading.Event()

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receives += 1
        self.release.wait(30)
        if self.error is not None:
            raise self.error
        return {"Messages": self.messages}

    def change_message_visibility(self, *, ReceiptHandle: str, VisibilityTimeout: int,  # noqa: N803
                                  **_: Any) -> None:
        assert VisibilityTimeout == 0
        self.visible_again.append(ReceiptHandle)
        self.returned.set()


def test_stopping_abandons_the_poll_and_gives_back_what_it_brings_later():
    # Given a worker's queue in a long poll that will bring one message
    sqs = SlowSqs([{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}])
    queue, stopping = PoolQueue(sqs, "url"), threading.Event()
    result: list[Any] = []
    poller = threading.Thread(target=lambda: result.append(
        queue.receive_unless_stopped(stopping, 1, 20, 60)))
    poller.start()
    # When the worker stops while the poll is open
    stopping.set()
    poller.join(10)
    # Then the call returns nothing at once (one request: no new poll was started)
    assert result == [[]]
    assert sqs.receives == 1
    # And the message the abandoned poll brings afterwards is made visible again
    sqs.release.set()
    assert sqs.returned.wait(10)
    assert sqs.visible_again == ["r1"]


def test_a_poll_that_answers_before_a_stop_hands_its_messages_over():
    sqs = SlowSqs([{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}])
    sqs.release.set()
    messages = PoolQueue(sqs, "url").receive_unless_stopped(threading.Event(), 1, 20, 60)
    assert [m["MessageId"] for m in messages] == ["m1"]
    assert sqs.visible_again == []


def test_a_failed_poll_raises_to_the_worker():
    sqs = SlowSqs([], error=ConnectionError("queue down"))
    sqs.release.set()
    with pytest.raises(ConnectionError, match="queue down"):
        PoolQueue(sqs, "url").receive_unless_stopped(threading.Event(), 1, 20, 60)
