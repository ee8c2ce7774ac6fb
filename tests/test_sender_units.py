"""The sender's parts on their own: congestion control, the flush tracker, the loss
reporter and the sender's threads against an in-memory exporter.  No socket; the
congestion rules run on a hand-moved clock."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from posthog_logging.congestion import CongestionControl, RetryPolicy
from posthog_logging.encoding import EncodedEvent
from posthog_logging.flushes import FlushTracker
from posthog_logging.journal import Journal
from posthog_logging.losses import Kept, LossReporter
from posthog_logging.sender import EventBuffer, Sender
from posthog_logging.stats import Stats
from posthog_logging.transport import PostResult

from .conftest import RecordCollector
from .fake_exporter import InMemoryExporter, ManualClock

UNAVAILABLE = PostResult(503, "unavailable")
REFUSED = PostResult(400, "bad request")


def events(count: int, start: int = 0) -> list[EncodedEvent]:
    return [json.dumps({"event": "$ai_span", "properties": {"n": n}}) for n in range(start, count)]


def sender_for(exporter: InMemoryExporter, **options: object) -> Sender:
    settings: dict[str, object] = {"flush_at": 10, "max_in_flight": 2}
    settings.update(options)
    return Sender(
        exporter,
        Stats(),
        EventBuffer(max_events=1000, max_bytes=1_000_000),
        **settings,  # type: ignore[arg-type]
    )


def close(sender: Sender, seconds: float = 10.0) -> None:
    sender.drain(time.monotonic() + seconds)
    sender.abandon()


# ------------------------------------------------------------------ congestion control
def test_a_failure_halves_the_requests_in_flight_and_pauses_them() -> None:
    clock = ManualClock()
    control = CongestionControl(8, RetryPolicy(base_delay=1.0, max_delay=4.0), clock)
    assert control.may_send(7) and not control.may_send(8)
    control.failed(UNAVAILABLE, sent_at=clock())
    assert control.limit == 4 and control.backing_off
    assert 0.5 <= control.pause_left() <= 1.0  # jittered, within the first backoff
    assert not control.may_send(0)
    clock.advance(1.0)
    assert control.may_send(3) and not control.may_send(4)


def test_requests_refused_together_grow_the_backoff_once() -> None:
    clock = ManualClock()
    control = CongestionControl(4, RetryPolicy(base_delay=1.0, max_delay=64.0), clock)
    sent_at = clock()
    clock.advance(0.01)
    for _ in range(4):  # four requests out at once, all refused
        control.failed(UNAVAILABLE, sent_at)
    assert control.failures == 1 and control.limit == 1
    assert control.pause_left() <= 1.0
    clock.advance(2.0)
    control.failed(UNAVAILABLE, clock())  # sent after the round: a second round
    assert control.failures == 2
    assert 1.0 <= control.pause_left() <= 2.0


def test_only_a_success_sent_after_the_failure_ends_the_round() -> None:
    clock = ManualClock()
    control = CongestionControl(4, RetryPolicy(), clock)
    before = clock()
    clock.advance(0.01)
    control.failed(UNAVAILABLE, clock())
    control.succeeded(before)  # an answer from before the failure says nothing now
    assert control.backing_off and control.limit == 2
    clock.advance(0.01)
    control.succeeded(clock())
    assert not control.backing_off and control.limit == 3


def test_retry_after_wins_when_longer_up_to_its_bound() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2, max_retry_after=5.0)
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 60.0) == 5.0
    assert 0.05 <= policy.delay(1, None) <= 0.1
    assert policy.should_retry(UNAVAILABLE, 7) and not policy.should_retry(UNAVAILABLE, 8)
    assert not policy.should_retry(REFUSED, 1)


# ------------------------------------------------------------------ flush tracker
def test_a_flush_is_released_once_every_event_before_it_settled() -> None:
    clock = ManualClock()
    tracker = FlushTracker(clock)
    early, late = threading.Event(), threading.Event()
    tracker.wait(5, clock() + 10, early)
    tracker.wait(9, clock() + 10, late)
    tracker.settled(4)
    assert not early.is_set()
    tracker.settled(5)
    assert early.is_set() and not late.is_set()
    clock.advance(11)  # a waiter whose deadline passed is forgotten, not released
    tracker.wait(20, clock() + 10, threading.Event())
    tracker.release_all()
    assert not tracker.anyone_waiting


def test_what_is_due_goes_however_small() -> None:
    tracker = FlushTracker(ManualClock())
    assert not tracker.is_due(0)
    tracker.due_before = 3
    assert tracker.is_due(2) and not tracker.is_due(3)
    tracker.deadline = 0.0
    assert tracker.is_due(99)


# ------------------------------------------------------------------ loss reporter
class HalfKeeper:
    """Keeps the first ``room`` events, then reports a full disk."""

    def __init__(self, room: int, directory: Path) -> None:
        self.room = room
        self.directory = directory
        self.settled: list[tuple[int, int]] = []

    def keep(self, first: int | None, events: list[EncodedEvent]) -> Kept:
        kept = min(self.room, len(events))
        self.room -= kept
        if kept < len(events):
            return Kept(kept, f"cannot write the journal {self.directory}: No space left")
        return Kept(kept)

    def settle(self, first: int, count: int) -> None:
        self.settled.append((first, count))


def test_every_lost_event_is_kept_or_dropped_exactly_once(
    tmp_path: Path, library_logs: RecordCollector
) -> None:
    stats = Stats()
    keeper = HalfKeeper(3, tmp_path)
    losses = LossReporter(stats, ManualClock(), keeper)
    losses.record_lost(0, events(5), "undeliverable", "HTTP 503", may_keep=True)
    losses.record_lost(5, events(2), "buffer_full", "the buffer is full", may_keep=False)
    losses.log_pending()
    counts = stats.snapshot()
    assert counts["spilled"] == 3
    assert counts["dropped"] == {"undeliverable": 2, "buffer_full": 2}
    assert keeper.settled == [(5, 2)]  # dropped events are not sent by a later process
    messages = library_logs.messages(logging.WARNING)
    assert any("No space left" in m and str(tmp_path) in m for m in messages)


def test_throttled_drop_reports_do_not_read_as_partial(library_logs: RecordCollector) -> None:
    clock = ManualClock()
    stats = Stats()
    losses = LossReporter(stats, clock, report_interval=30.0)
    losses.record_lost(None, events(1000), "undeliverable", "HTTP 404", may_keep=False)
    for _ in range(96):
        clock.advance(0.1)
        losses.record_lost(None, events(10), "undeliverable", "HTTP 404", may_keep=False)
    clock.advance(30.0)
    losses.record_lost(None, events(1), "undeliverable", "HTTP 404", may_keep=False)
    losses.log_pending()
    first, second = library_logs.messages(logging.WARNING)
    assert first == "posthog-logging: dropped 1000 events (HTTP 404)"
    assert second == (
        "posthog-logging: dropped 961 more events since the last report (HTTP 404); "
        "0 delivered meanwhile; 1961 dropped as undeliverable in all"
    )


# ------------------------------------------------------------------ sender threads
def test_the_sender_delivers_each_event_once_through_the_exporter() -> None:
    exporter = InMemoryExporter()
    sender = sender_for(exporter)
    for event in events(35):
        sender.add(event)
    close(sender)
    assert sorted(exporter.accepted) == sorted(events(35))
    assert sender.stats.snapshot()["sent"] == 35


def test_a_retryable_failure_is_retried_and_a_refusal_is_dropped_counted() -> None:
    exporter = InMemoryExporter(UNAVAILABLE, REFUSED)
    sender = sender_for(
        exporter,
        max_in_flight=1,
        max_request_events=10,
        retry=RetryPolicy(base_delay=0.001, max_delay=0.002),
    )
    for event in events(20):
        sender.add(event)
    close(sender)
    counts = sender.stats.snapshot()
    assert counts["retried"] == 1
    assert counts["sent"] + counts["dropped"]["undeliverable"] == 20
    assert counts["dropped"]["undeliverable"] == 10
    assert len(set(exporter.accepted)) == 10


def test_a_flush_waits_for_its_events_and_no_longer() -> None:
    exporter = InMemoryExporter()
    sender = sender_for(exporter, flush_at=100)
    for event in events(3):
        sender.add(event)
    done = threading.Event()
    sender.when_settled(sender.make_due(), time.monotonic() + 10, done)
    assert done.wait(10)
    assert exporter.accepted == events(3)
    close(sender)


def test_without_a_journal_what_is_held_at_close_is_dropped_counted() -> None:
    exporter = InMemoryExporter(hang=True)
    sender = sender_for(exporter, flush_at=5)
    for event in events(12):
        sender.add(event)
    sender.drain(time.monotonic() + 0.2)
    sender.abandon()
    assert sender.stats.snapshot()["dropped"] == {"shutdown_deadline": 12}
    assert exporter.accepted == []


@pytest.mark.parametrize("hang", [False, True])
def test_with_a_journal_close_does_not_wait_out_an_outage(tmp_path: Path, hang: bool) -> None:
    """Backing off (503s) or no answer: close() leaves the backlog to the journal
    at once instead of waiting for the backoff or the shutdown deadline."""
    exporter = InMemoryExporter(hang=True) if hang else InMemoryExporter(*[UNAVAILABLE] * 50)
    sender = sender_for(
        exporter,
        flush_at=5,
        journal=Journal(tmp_path),
        retry=RetryPolicy(base_delay=600.0, max_delay=600.0),
    )
    for event in events(12):
        sender.add(event)
    deadline = time.monotonic() + 600
    sender.drain(deadline)
    assert time.monotonic() < deadline  # not the deadline: the journal holds the backlog
    sender.abandon()
    counts = sender.stats.snapshot()
    assert counts["spilled"] == 12 and counts["dropped"] == {}
    if not hang:
        assert len(exporter.batches) <= 2  # one round, then the 600 s backoff was not waited
    journaled = [line for path in tmp_path.glob("journal-*.jsonl") for line in path.open()]
    assert sorted(line.strip() for line in journaled) == sorted(events(12))
