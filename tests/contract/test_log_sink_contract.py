"""The `LogSink` contract (functions/sluice_functions/ports.py), run against every adapter.

Timestamps are recent (CloudWatch Logs refuses events older than 14 days) and whole
milliseconds apart where order matters (CloudWatch orders events by millisecond).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from contract_support import bad_cursors, log_record, new_id

from sluice.exceptions import BadRequest
from sluice.models import LogLevel, LogRecord, Page
from sluice_functions.ports import LogSink


@pytest.fixture
def start() -> datetime:
    """A recent instant on a whole millisecond, the first log line's time."""
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def ms(start: datetime, milliseconds: int) -> datetime:
    return start + timedelta(milliseconds=milliseconds)


def read_to_the_end(log_sink, flow_run_id: str, cursor: str | None = None, limit: int = 100):
    """Every record after `cursor` and the cursor to follow with; pages must fit `limit`."""
    records: list[LogRecord] = []
    for _ in range(100):
        page = log_sink.read(flow_run_id, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        assert isinstance(page.next_cursor, str), "next_cursor must always be a string"
        cursor = page.next_cursor
        if not page.items:
            return records, cursor
        records.extend(page.items)
    raise AssertionError("the log never caught up")


def test_the_adapter_implements_the_port(log_sink):
    assert isinstance(log_sink, LogSink)


def test_appended_records_read_back_unchanged(log_sink, start):
    # Given records with every field set, one with a microsecond timestamp
    run_id = new_id("fr-")
    records = [
        log_record(run_id, ms(start, 0), "starting", level=LogLevel.DEBUG, logger="sluice.flow"),
        log_record(run_id, ms(start, 1) + timedelta(microseconds=250), "ünïcode ✓ and\nnewline",
                   level=LogLevel.ERROR, task_run_id="tr-1", logger="etl.extract"),
    ]

    # When they are appended
    assert log_sink.append(run_id, records) == 2

    # Then reading gives them back as they were, in UTC
    read, _ = read_to_the_end(log_sink, run_id)
    assert read == records
    assert all(r.timestamp.utcoffset() == timedelta(0) for r in read)


def test_records_are_read_by_timestamp_whatever_the_append_order(log_sink, start):
    # Given records appended out of timestamp order, in two batches
    run_id = new_id("fr-")
    at_3, at_1, at_2, at_0 = (log_record(run_id, ms(start, t)) for t in (3, 1, 2, 0))
    log_sink.append(run_id, [at_3, at_1])
    log_sink.append(run_id, [at_2, at_0])

    # Then they are read oldest first
    read, _ = read_to_the_end(log_sink, run_id)
    assert read == [at_0, at_1, at_2, at_3]


def test_records_with_one_timestamp_keep_their_append_order(log_sink, start):
    run_id = new_id("fr-")
    same_time = [log_record(run_id, ms(start, 5), f"line {i}") for i in range(4)]
    log_sink.append(run_id, same_time[:2])
    log_sink.append(run_id, same_time[2:])
    read, _ = read_to_the_end(log_sink, run_id)
    assert [r.message for r in read] == ["line 0", "line 1", "line 2", "line 3"]


def test_a_replayed_record_is_never_read_twice(log_sink, start):
    # Given records appended once
    run_id = new_id("fr-")
    first, second = log_record(run_id, ms(start, 0)), log_record(run_id, ms(start, 1))
    log_sink.append(run_id, [first, second])

    # When a batch repeating one of them (twice) is appended again, as a retried request does
    third = log_record(run_id, ms(start, 2))
    accepted = log_sink.append(run_id, [second, third, second])

    # Then readers see each record once
    assert accepted in (1, 3)  # 1 if the adapter refuses repeats; 3 if it drops them on read
    read, _ = read_to_the_end(log_sink, run_id)
    assert read == [first, second, third]


def test_a_follower_never_sees_a_replayed_record_again(log_sink, start):
    # Given a follower that has read a run's records to the end
    run_id = new_id("fr-")
    first, last = log_record(run_id, ms(start, 0)), log_record(run_id, ms(start, 1))
    log_sink.append(run_id, [first, last])
    _, cursor = read_to_the_end(log_sink, run_id)

    # When the batch is appended again (a retried request) along with a new record
    newer = log_record(run_id, ms(start, 2))
    log_sink.append(run_id, [first, last, newer])

    # Then the follower's next reads give the new record only
    assert read_to_the_end(log_sink, run_id, cursor)[0] == [newer]


def test_record_ids_are_scoped_to_their_run(log_sink, start):
    # Given two runs each logging a record with the same id
    run_a, run_b = new_id("fr-"), new_id("fr-")
    record_a = log_record(run_a, ms(start, 0), "in a", id="log-1")
    record_b = log_record(run_b, ms(start, 1), "in b", id="log-1")
    log_sink.append(run_a, [record_a])
    log_sink.append(run_b, [record_b])

    # Then each run reads its own record only
    assert read_to_the_end(log_sink, run_a)[0] == [record_a]
    assert read_to_the_end(log_sink, run_b)[0] == [record_b]


def test_pages_fit_the_limit_and_their_cursors_resume_where_they_stopped(log_sink, start):
    # Given 25 records
    run_id = new_id("fr-")
    records = [log_record(run_id, ms(start, t)) for t in range(25)]
    log_sink.append(run_id, records)

    # When they are read ten at a time
    read, _ = read_to_the_end(log_sink, run_id, limit=10)

    # Then together the pages hold every record once, in order
    assert read == records


def test_a_follower_sees_later_records_with_its_old_cursor(log_sink, start):
    # Given a follower that read a run's logs to the end
    run_id = new_id("fr-")
    early = [log_record(run_id, ms(start, t)) for t in range(3)]
    log_sink.append(run_id, early)
    read, cursor = read_to_the_end(log_sink, run_id)
    assert read == early

    # When it polls again before anything new is logged, it gets nothing and a cursor
    caught_up = log_sink.read(run_id, cursor=cursor)
    assert caught_up.items == [] and isinstance(caught_up.next_cursor, str)

    # When more records are appended later
    late = [log_record(run_id, ms(start, t)) for t in (10, 11)]
    log_sink.append(run_id, late)

    # Then the old cursor (and the caught-up one) yield exactly the new records
    assert read_to_the_end(log_sink, run_id, cursor)[0] == late
    assert read_to_the_end(log_sink, run_id, caught_up.next_cursor)[0] == late


def test_a_run_without_logs_reads_as_an_empty_page_with_a_cursor(log_sink, start):
    # Given a run that has no logs yet
    run_id = new_id("fr-")
    page = log_sink.read(run_id)
    assert isinstance(page, Page)
    assert page.items == [] and isinstance(page.next_cursor, str)

    # When it logs its first line, the cursor from the empty read finds it
    first = log_record(run_id, ms(start, 0))
    log_sink.append(run_id, [first])
    assert read_to_the_end(log_sink, run_id, page.next_cursor)[0] == [first]


@pytest.mark.parametrize("cursor", list(bad_cursors()))
def test_a_cursor_the_sink_did_not_issue_is_a_bad_request(log_sink, cursor, start):
    run_id = new_id("fr-")
    log_sink.append(run_id, [log_record(run_id, ms(start, 0))])
    with pytest.raises(BadRequest):
        log_sink.read(run_id, cursor=cursor)
