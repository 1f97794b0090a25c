"""The `RunQueue` contract (functions/sluice_functions/ports.py), run against every adapter.

Timing tests use delays and visibility timeouts of 1-2 s (SQS counts them in whole seconds).
They prove "not before" exactly and "promptly after" within the adapter's `wake_slack_seconds`;
long polls that wait for a time to pass start half a second off the whole second, so a receiver
that merely re-checks once a second cannot pass for one that wakes when a message is due.
"""

from __future__ import annotations

import threading
import time

import pytest
from contract_support import run_concurrently

from sluice.exceptions import NotFound
from sluice_functions.ports import (
    MAX_DELAY_SECONDS,
    PoolQueue,
    QueueDepth,
    QueueMessage,
    RunQueue,
)

POOL = "jobs"
#: Long enough that a message received in a test never reappears during it.
HOLD_SECONDS = 60
#: How soon every adapter must answer when nothing needs to wait (thread scheduling only).
PROMPTLY_SECONDS = 0.5


@pytest.fixture
def pool_queue(run_queue) -> PoolQueue:
    return run_queue.create_pool_queue(POOL)


def receive_one(run_queue, *, wait_seconds: int = 2, **options) -> QueueMessage:
    """The one message the queue should hand out now."""
    messages = run_queue.receive(POOL, wait_seconds=wait_seconds, **options)
    assert len(messages) == 1, messages
    return messages[0]


def receive_nothing(run_queue, **options) -> None:
    assert run_queue.receive(POOL, wait_seconds=0, **options) == []


def test_the_adapter_implements_the_port(run_queue):
    assert isinstance(run_queue, RunQueue)


def test_creating_a_pool_queue_is_idempotent(run_queue):
    first = run_queue.create_pool_queue(POOL)
    message_id = run_queue.send(POOL, "kept")

    again = run_queue.create_pool_queue(POOL)

    assert again == first
    assert first.pool == POOL and first.queue_url != first.dlq_url
    assert receive_one(run_queue).message_id == message_id


def test_a_pool_without_a_queue_is_not_found(run_queue):
    with pytest.raises(NotFound):
        run_queue.send("nowhere", "x")
    with pytest.raises(NotFound):
        run_queue.receive("nowhere")
    with pytest.raises(NotFound):
        run_queue.depth("nowhere")


def test_a_sent_message_is_received_once_with_a_fresh_receipt(run_queue, pool_queue):
    # Given a message sent without delay
    message_id = run_queue.send(POOL, '{"flow_run_id": "fr-1"}')

    # When it is received
    message = receive_one(run_queue, visibility_timeout=HOLD_SECONDS)

    # Then it carries its id, body and first receive count, and is hidden from other receivers
    assert message.message_id == message_id
    assert message.body == '{"flow_run_id": "fr-1"}'
    assert message.receive_count == 1
    assert message.receipt_handle
    receive_nothing(run_queue)


def test_the_queues_default_visibility_timeout_hides_a_received_message(run_queue, pool_queue):
    run_queue.send(POOL, "m")
    receive_one(run_queue)  # visibility_timeout=None: the queue's default (SQS: 30 s)
    receive_nothing(run_queue)


def test_an_empty_queue_gives_nothing(run_queue, pool_queue):
    started = time.monotonic()
    assert run_queue.receive(POOL) == []
    assert time.monotonic() - started < PROMPTLY_SECONDS


@pytest.mark.parametrize("delay_seconds", [-1, MAX_DELAY_SECONDS + 1])
def test_a_delay_outside_the_sqs_range_is_refused_and_nothing_is_sent(
    run_queue, pool_queue, delay_seconds
):
    with pytest.raises(ValueError):
        run_queue.send(POOL, "m", delay_seconds=delay_seconds)
    assert run_queue.depth(POOL) == QueueDepth(visible=0, in_flight=0, delayed=0, dead_letter=0)


@pytest.mark.parametrize(
    "options",
    [
        {"max_messages": 0},
        {"max_messages": 11},
        {"wait_seconds": -1},
        {"wait_seconds": 21},
        {"visibility_timeout": -1},
        {"visibility_timeout": 12 * 60 * 60 + 1},
    ],
)
def test_receive_options_outside_the_sqs_ranges_are_refused(run_queue, pool_queue, options):
    # Beyond ports.py's text (it gives the ranges, not the error): both adapters raise
    # ValueError, as `send` does for its delay, and hand out nothing.
    run_queue.send(POOL, "m")
    with pytest.raises(ValueError):
        run_queue.receive(POOL, **options)
    assert run_queue.depth(POOL).visible == 1


def test_a_delayed_message_is_delivered_at_its_second_and_not_before(
    run_queue, pool_queue, wake_slack_seconds
):
    # Given a message sent with a 2 s delay
    sent_at = time.monotonic()
    message_id = run_queue.send(POOL, "later", delay_seconds=2)

    # When receivers ask at once, and again half a second later with a long poll
    receive_nothing(run_queue)
    time.sleep(0.5)
    message = receive_one(run_queue, wait_seconds=5)

    # Then the long poll gets it once the delay is over, promptly
    waited = time.monotonic() - sent_at
    assert message.message_id == message_id
    assert 2 - 0.05 <= waited < 2 + wake_slack_seconds


def test_a_long_poll_returns_as_soon_as_another_thread_sends(run_queue, pool_queue):
    # Given a receiver long-polling an empty queue for up to 10 s
    received: list[QueueMessage] = []
    receiver = threading.Thread(
        target=lambda: received.extend(run_queue.receive(POOL, wait_seconds=10))
    )
    started = time.monotonic()
    receiver.start()

    # When another thread sends a message 0.3 s later
    time.sleep(0.3)
    message_id = run_queue.send(POOL, "now")
    receiver.join(timeout=12)

    # Then the receiver returns with it right away instead of waiting out its 10 s
    assert [m.message_id for m in received] == [message_id]
    assert time.monotonic() - started < 0.3 + PROMPTLY_SECONDS


def test_a_long_poll_on_an_empty_queue_waits_then_gives_nothing(run_queue, pool_queue):
    started = time.monotonic()
    assert run_queue.receive(POOL, wait_seconds=1) == []
    assert 1 - 0.05 <= time.monotonic() - started < 1 + PROMPTLY_SECONDS


def test_an_unacknowledged_message_reappears_after_its_visibility_timeout(
    run_queue, pool_queue, wake_slack_seconds
):
    # Given a message received with a 1 s visibility timeout and never deleted
    run_queue.send(POOL, "m")
    first = receive_one(run_queue, visibility_timeout=1)
    received_at = time.monotonic()
    receive_nothing(run_queue)

    # When a receiver long-polls half a second later
    time.sleep(0.5)
    second = receive_one(run_queue, wait_seconds=5, visibility_timeout=HOLD_SECONDS)

    # Then the same message comes back when the timeout ends, counted twice, with a new receipt
    assert 1 - 0.05 <= time.monotonic() - received_at < 1 + wake_slack_seconds
    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.receipt_handle != first.receipt_handle


def test_changing_visibility_to_zero_makes_a_message_visible_now(run_queue, pool_queue):
    run_queue.send(POOL, "m")
    first = receive_one(run_queue, visibility_timeout=HOLD_SECONDS)

    run_queue.change_visibility(POOL, first.receipt_handle, 0)

    again = receive_one(run_queue, wait_seconds=0)
    assert again.message_id == first.message_id and again.receive_count == 2


def test_changing_visibility_to_zero_wakes_a_long_poll(run_queue, pool_queue, wake_slack_seconds):
    # Given a held message and a receiver long-polling for 5 s
    run_queue.send(POOL, "m")
    held = receive_one(run_queue, visibility_timeout=HOLD_SECONDS)
    received: list[QueueMessage] = []
    receiver = threading.Thread(
        target=lambda: received.extend(run_queue.receive(POOL, wait_seconds=5))
    )
    started = time.monotonic()
    receiver.start()

    # When the holder releases the message 0.3 s later
    time.sleep(0.3)
    run_queue.change_visibility(POOL, held.receipt_handle, 0)
    receiver.join(timeout=7)

    # Then the receiver gets it at once, not when its wait is over
    assert [m.message_id for m in received] == [held.message_id]
    assert time.monotonic() - started < 0.3 + wake_slack_seconds


def test_extending_visibility_keeps_a_message_hidden_past_its_first_timeout(run_queue, pool_queue):
    # Given a message received for 1 s, then extended to 3 s (as a worker's heartbeat does)
    run_queue.send(POOL, "m")
    held = receive_one(run_queue, visibility_timeout=1)
    run_queue.change_visibility(POOL, held.receipt_handle, 3)

    # When the first timeout has passed
    time.sleep(1.3)

    # Then the message is still hidden
    receive_nothing(run_queue)
    assert run_queue.depth(POOL).in_flight == 1


@pytest.mark.moto_gap("moto accepts every receipt handle a message ever had")
def test_a_stale_receipt_cannot_change_visibility(run_queue, pool_queue):
    # Given a message received twice: the first receipt is stale
    run_queue.send(POOL, "m")
    stale = receive_one(run_queue, visibility_timeout=0)
    latest = receive_one(run_queue, visibility_timeout=HOLD_SECONDS)
    assert latest.receipt_handle != stale.receipt_handle

    # When the first receiver tries to release the message
    with pytest.raises(NotFound):
        run_queue.change_visibility(POOL, stale.receipt_handle, 0)

    # Then the latest receiver still holds it
    receive_nothing(run_queue)


def test_a_deleted_message_is_gone_and_deleting_again_is_fine(run_queue, pool_queue):
    # Given a received message that is deleted
    run_queue.send(POOL, "m")
    message = receive_one(run_queue, visibility_timeout=1)
    run_queue.delete(POOL, message.receipt_handle)

    # When its visibility would have run out, and its receipt is used again
    run_queue.delete(POOL, message.receipt_handle)
    with pytest.raises(NotFound):
        run_queue.change_visibility(POOL, message.receipt_handle, 10)

    # Then it never comes back
    assert run_queue.receive(POOL, wait_seconds=2) == []
    assert run_queue.depth(POOL) == QueueDepth(visible=0, in_flight=0, delayed=0, dead_letter=0)


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(run_queue):
    # Given a queue that delivers a message at most twice
    run_queue.create_pool_queue(POOL, max_receive_count=2)
    poison_id = run_queue.send(POOL, "poison")

    # When the message is received twice and never deleted
    counts = [receive_one(run_queue, visibility_timeout=0).receive_count for _ in range(2)]
    assert counts == [1, 2]

    # Then the next receive does not deliver it a third time but dead-letters it,
    # while a healthy message sent after it is still delivered
    healthy_id = run_queue.send(POOL, "healthy")
    delivered = {m.message_id for m in run_queue.receive(POOL, max_messages=10, wait_seconds=2)}
    delivered |= {m.message_id for m in run_queue.receive(POOL, max_messages=10)}
    assert delivered == {healthy_id}
    assert poison_id not in delivered
    assert run_queue.depth(POOL) == QueueDepth(visible=0, in_flight=1, delayed=0, dead_letter=1)


def test_depth_counts_visible_in_flight_delayed_and_dead_letter_messages(run_queue):
    # Given a queue with a dead-lettered message, one in flight, one visible and one delayed
    run_queue.create_pool_queue(POOL, max_receive_count=1)
    run_queue.send(POOL, "dead")
    receive_one(run_queue, visibility_timeout=0)
    receive_nothing(run_queue)  # the second delivery attempt dead-letters it
    run_queue.send(POOL, "in flight")
    receive_one(run_queue, visibility_timeout=HOLD_SECONDS)
    run_queue.send(POOL, "visible")
    run_queue.send(POOL, "delayed", delay_seconds=HOLD_SECONDS)

    # Then depth counts one of each
    assert run_queue.depth(POOL) == QueueDepth(visible=1, in_flight=1, delayed=1, dead_letter=1)


def test_a_receive_returns_at_most_max_messages_and_each_message_once(run_queue, pool_queue):
    # Given seven messages
    sent = {run_queue.send(POOL, f"m{i}") for i in range(7)}

    # When they are received three at most at a time
    received: list[QueueMessage] = []
    for _ in range(10):
        batch = run_queue.receive(
            POOL, max_messages=3, wait_seconds=1, visibility_timeout=HOLD_SECONDS
        )
        assert len(batch) <= 3
        received.extend(batch)
        if len(received) >= len(sent):
            break

    # Then every message came exactly once
    assert sorted(m.message_id for m in received) == sorted(sent)
    assert {m.body for m in received} == {f"m{i}" for i in range(7)}


@pytest.mark.moto_gap("moto's ReceiveMessage takes no lock: two threads can get one message")
def test_concurrent_receivers_never_share_a_message(run_queue, pool_queue):
    # Given 120 messages and 8 receivers polling at once, two messages at a time
    sent = {run_queue.send(POOL, f"m{i}") for i in range(120)}

    def drain(_: int) -> list[str]:
        mine: list[str] = []
        while batch := run_queue.receive(POOL, max_messages=2, visibility_timeout=HOLD_SECONDS):
            mine.extend(m.message_id for m in batch)
        return mine

    outcomes = run_concurrently(drain, 8)

    # Then each message went to exactly one receiver
    assert outcomes.errors == []
    delivered = [message_id for mine in outcomes.results for message_id in mine]
    assert sorted(delivered) == sorted(sent)


def test_pools_have_separate_queues(run_queue):
    run_queue.create_pool_queue("cpu")
    run_queue.create_pool_queue("gpu")
    message_id = run_queue.send("gpu", "m")

    assert run_queue.receive("cpu", wait_seconds=0) == []
    assert [m.message_id for m in run_queue.receive("gpu", wait_seconds=1)] == [message_id]
    assert run_queue.depth("cpu").in_flight == 0
