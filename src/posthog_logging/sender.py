"""Sending: encoded events from a bounded buffer to PostHog, several requests at once.

The listener (``pipeline``) only appends encoded events to the
:class:`EventBuffer` through :meth:`Sender.add`; up to ``max_in_flight``
sender threads take batches from it and hand them to an
:class:`~.exporter.Exporter` (HTTP through the :class:`~.transport.Transport`),
so mapping never waits on HTTP.  Batches grow with the backlog: a sender takes
its share of what is buffered (at least ``flush_at`` events, at most
``max_request_events`` and ``max_request_bytes``), and a quiet application's
few events go when they are made due (the flush interval, ``flush()``,
``close()``).

The jobs around the threads are objects of their own, each tested alone:

* :class:`~.congestion.CongestionControl`: how many requests may be in flight
  and when the next may leave (back-pressure on 429, 5xx or no answer);
* :class:`~.flushes.FlushTracker`: what is due, and which ``flush()`` waits for what;
* :class:`~.losses.LossReporter`: every event not delivered passes through one
  call with its reason, and is kept in the journal or dropped, counted;
* :class:`~.journal.Journal` (with ``spill_dir``): every event on disk before
  it is sent; :class:`Resumer` sends what earlier processes left there.

A failed batch waits in a retry list, oldest first, and no thread ever sleeps
on its behalf: the senders serve other batches or wait on the condition until
the pause ends.

Threads and locks: one condition (``Sender._ready``, over a re-entrant lock)
guards the buffer, the batches in flight or waiting for a retry, and the
objects above.  The listener holds it to append, a sender to take a batch and
to settle its outcome; nobody holds it while exporting or logging (warnings
decided under it are logged once it is released).  When no sender thread can
start (at interpreter exit), the thread that waits sends through the same
methods itself: the listener for a ``flush()`` (the caller's thread when no
listener runs either), the closing thread for ``close()``; so does a
``close()`` called on one of the library's own threads.

Order across concurrent requests is not kept: PostHog orders events by
``timestamp`` and de-duplicates on ``uuid``.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .backlog import FileSender, own_line_events
from .congestion import CongestionControl, RetryPolicy
from .contract import DIAGNOSTICS_LOGGER
from .encoding import EncodedEvent
from .exporter import Exporter, Outcome
from .flushes import FlushTracker
from .journal import Journal
from .losses import LossReporter
from .spill import default_state_directory, own_files
from .stats import Stats
from .transport import PostResult

#: Requests in flight at once (each on its own kept-alive connection).
DEFAULT_MAX_IN_FLIGHT = 4
#: A request never carries more events than this (nor fewer than ``flush_at``
#: unless they are due).
MAX_REQUEST_EVENTS = 1000
#: Nor more bytes (before gzip) than this, unless one event alone is larger:
#: well inside PostHog's 20 MB request body even without gzip.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: With a journal, close() leaves the backlog to it once no request was answered
#: for this long (the server hangs), instead of waiting out ``shutdown_timeout``.
JOURNAL_STALL_SECONDS = 0.75
#: How often a close() that waits checks whether it may leave the rest to the journal.
STALL_CHECK_SECONDS = 0.1
#: What earlier processes left in the journal is sent at most this fast.
RESUME_EVENTS_PER_SECOND = 2000.0
#: After a failed attempt, the resume tries again this much later.
RESUME_RETRY_SECONDS = 30.0
SHUTDOWN_WHY = "not delivered by the shutdown deadline"

_log = logging.getLogger(DIAGNOSTICS_LOGGER)


class LibraryThread(threading.local):
    """Set while a thread works for the library (listener, senders, inline drains):
    records logged there are never consumed by the handler."""

    active = False


library_thread = LibraryThread()


@dataclass(eq=False)
class Batch:
    """Events taken from the buffer for one request (and its retries)."""

    events: list[EncodedEvent]
    #: Sequence number of its first event: flush() waits on these, the journal settles by them.
    first: int
    attempts: int = 0
    #: When its latest attempt was taken to be posted (the sender's clock).
    sent_at: float = 0.0


class EventBuffer:
    """A FIFO of encoded events, bounded in count and bytes together with the
    events taken out of it and not yet settled (in flight, or waiting to be retried)."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[EncodedEvent] = deque()
        #: Bytes of every event held: queued, in flight or waiting for a retry.
        self.bytes = 0
        self.held_events = 0
        #: Bytes of the queued events alone: all a new event can push out.
        self.queued_bytes = 0
        #: Events ever taken off the head (to send, or dropped): the head's sequence number.
        self.removed = 0

    def __len__(self) -> int:
        """Events queued (not counting those taken out)."""
        return len(self._events)

    @property
    def appended(self) -> int:
        return self.removed + len(self._events)

    def append(self, event: EncodedEvent) -> list[EncodedEvent]:
        """Add at the tail; returns the oldest queued events pushed out by the bound,
        or the new one itself when pushing out every queued event would not make
        room for it (it is larger than the whole bound, or the events in flight
        leave too little): then the others stay.

        Room is made before the event is counted: the bound holds at every moment.
        """
        size = len(event)
        in_flight_events = self.held_events - len(self._events)
        in_flight_bytes = self.bytes - self.queued_bytes
        if in_flight_events >= self.max_events or in_flight_bytes + size > self.max_bytes:
            return [event]
        overflow: list[EncodedEvent] = []
        while not self._fits(size):  # ends: an empty queue leaves room (above)
            overflow.extend(self.release(self.take(1, 0)))
        self._events.append(event)
        self.bytes += size
        self.queued_bytes += size
        self.held_events += 1
        return overflow

    def _fits(self, size: int) -> bool:
        return self.held_events < self.max_events and self.bytes + size <= self.max_bytes

    def take(self, count: int, max_bytes: int) -> list[EncodedEvent]:
        """Take up to ``count`` events off the head, within ``max_bytes`` (at least one).

        They stay counted against the bound until :meth:`release`.
        """
        taken: list[EncodedEvent] = []
        size = 0
        events = self._events
        while events and len(taken) < count:
            length = len(events[0])
            if taken and size + length > max_bytes:
                break
            taken.append(events.popleft())
            size += length
        self.removed += len(taken)
        self.queued_bytes -= size
        return taken

    def release(self, events: list[EncodedEvent]) -> list[EncodedEvent]:
        """Stop counting taken events (sent, spilled or dropped); returns them."""
        self.bytes -= sum(len(event) for event in events)
        self.held_events -= len(events)
        return events


class Sender:
    """Posts the buffer's events with up to ``max_in_flight`` requests at once."""

    def __init__(
        self,
        exporter: Exporter,
        stats: Stats,
        buffer: EventBuffer,
        *,
        flush_at: int,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry: RetryPolicy | None = None,
        journal: Journal | None = None,
        spill_on_overflow: bool = False,
        max_request_events: int = MAX_REQUEST_EVENTS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exporter = exporter
        self.stats = stats
        self.buffer = buffer
        self.flush_at = flush_at
        self.max_in_flight = max_in_flight
        self.retry = retry or RetryPolicy()
        self.journal = journal
        self.spill_on_overflow = spill_on_overflow
        self.max_request_events = max(flush_at, max_request_events)
        self.max_request_bytes = max_request_bytes
        self._clock = clock
        self._ready = threading.Condition(threading.RLock())
        self.congestion = CongestionControl(max_in_flight, self.retry, clock)
        self.flushes = FlushTracker(clock)
        self.losses = LossReporter(stats, clock, journal)
        if journal is not None:
            journal.report = lambda message: self.losses.note("posthog-logging: %s", message)
        self._in_flight: set[Batch] = set()
        self._retries: list[Batch] = []  # oldest first
        self._threads: list[threading.Thread] = []
        self._threads_failed = False
        #: Threads waiting on ``_ready``, and how many of them were woken by
        #: :meth:`_wake_one` and have not run yet: a ready batch wakes one sender,
        #: not one per event added (each wake-up costs the GIL a switch).
        self._waiting = 0
        self._woken = 0
        self._stopping = False
        self.abandoned = False
        #: When a request was last answered (or close() began waiting): a hanging server.
        self._last_answer = clock()
        self._latest_failure: PostResult | None = None
        self.resumer: Resumer | None = None

    # ------------------------------------------------------------ listener side
    def add(self, event: EncodedEvent) -> None:
        """Buffer one encoded event: :meth:`add_many` of one."""
        self.add_many([event])

    def add_many(self, events: list[EncodedEvent]) -> None:
        """Buffer encoded events, journaled first (with a journal: the run with one
        write, before any sender can take them); wake a sender when a batch is ready."""
        with self._ready:
            if self.abandoned:
                self.losses.record_lost(
                    None, events, "shutdown_deadline", SHUTDOWN_WHY, may_keep=False
                )
            else:
                unwritten: list[EncodedEvent] = []  # buffered last, not yet journaled
                for event in events:
                    head = self.buffer.removed
                    overflow = self.buffer.append(event)
                    refused = bool(overflow) and overflow[-1] is event
                    if not refused:
                        unwritten.append(event)
                    if overflow:
                        self._journal(unwritten)  # before what was pushed out is kept
                        self.losses.record_lost(
                            None if refused else head,
                            overflow,
                            "buffer_full",
                            "the buffer is full",
                            may_keep=self.spill_on_overflow,
                        )
                self._journal(unwritten)
                if len(self.buffer) >= self.flush_at and self._start_threads():
                    self._wake_one()
        if self.journal is not None:
            self.journal.sync_now_and_then()
        self.losses.log_pending()

    def _journal(self, unwritten: list[EncodedEvent]) -> None:
        """Journal the events buffered last (the tail's numbers) and empty the list."""
        if self.journal is not None and unwritten:
            self.journal.append(self.buffer.appended - len(unwritten), unwritten)
        unwritten.clear()

    def make_due(self) -> int:
        """Everything buffered now goes, in batches however small; returns the
        sequence number that :meth:`when_settled` can wait for."""
        with self._ready:
            self.flushes.due_before = self.buffer.appended
            if len(self.buffer) and self._start_threads():
                self._ready.notify_all()
            return self.flushes.due_before

    def when_settled(self, target: int, deadline: float, done: threading.Event) -> None:
        """Set ``done`` once every event before ``target`` was sent, kept or dropped.

        Without sender threads, sends on this thread until then or ``deadline``.
        """
        with self._ready:
            self.flushes.wait(target, deadline, done)
            self._release_waiters()
            if done.is_set() or self._start_threads():
                return
        self._send_inline(done.is_set, deadline)

    def drain(self, deadline: float) -> None:
        """close(): send everything, however small the batches, until ``deadline``;
        with a journal, only until the server fails or stops answering (the
        journal then holds the rest for the next process).

        On one of the library's threads (close() called from a log record of the
        senders or the listener) it sends on this thread rather than wait for
        senders that may include this very thread.
        """
        with self._ready:
            self.flushes.deadline = deadline
            self._last_answer = self._clock()
            if self._settled_all():
                return
            threaded = self._start_threads()
            if threaded and not library_thread.active:
                self._ready.notify_all()
                while not (self._settled_all() or self._may_leave_to_journal()):
                    left = deadline - self._clock()
                    if left <= 0:
                        return
                    self._wait(min(left, STALL_CHECK_SECONDS))
                return
        self._send_inline(lambda: self._settled_all() or self._may_leave_to_journal(), deadline)

    def abandon(self) -> None:
        """Give up: keep in the journal (or drop, counted) everything held, and stop
        the threads.

        Batches still in flight are kept too: a hanging server must not cost
        them.  Should one of them arrive after all, its events keep their
        uuids, so PostHog counts them once.
        """
        with self._ready:
            if self.abandoned:
                return
            outage = self._may_leave_to_journal()
            self.abandoned = self._stopping = True
            self.exporter.shutdown()
            if self.resumer is not None:
                self.resumer.stop()
            batches = sorted([*self._in_flight, *self._retries], key=lambda batch: batch.first)
            self._retries.clear()
            queued_first = self.buffer.removed
            queued = self.buffer.take(len(self.buffer), self.buffer.bytes)
            batches.append(Batch(queued, queued_first))
            held = sum(len(batch.events) for batch in batches)
            for batch in batches:
                self.losses.record_lost(
                    batch.first,
                    self.buffer.release(batch.events),
                    "shutdown_deadline",
                    SHUTDOWN_WHY,
                    may_keep=True,
                )
            if self.journal is not None:
                self.journal.close()
                if outage and held:
                    self._say_left_to_journal(held, self.journal)
            self.flushes.release_all()
            self._ready.notify_all()
        self.losses.log_pending()

    def _may_leave_to_journal(self) -> bool:
        """Whether close() may stop waiting: the journal holds every event held, and
        the server is failing (the sender backs off) or has not answered for a while."""
        journal = self.journal
        if journal is None or journal.failing:
            return False
        if self.congestion.backing_off:
            return True
        silent = self._clock() - self._last_answer
        return bool(self._in_flight) and silent >= JOURNAL_STALL_SECONDS

    def _say_left_to_journal(self, held: int, journal: Journal) -> None:
        failure = self._latest_failure
        why = failure.describe() if failure is not None else "no answer"
        self.losses.note(
            "posthog-logging: PostHog is unavailable (%s): close() left %d events in %s "
            "for the next process with this spill_dir (or posthog-logging replay %s)",
            why,
            held,
            journal.directory,
            journal.directory,
        )

    # -------------------------------------------------------------- senders
    def resume_backlog(self) -> None:
        """Start sending, in the background, what earlier processes left in the
        journal's directory (with a journal; once)."""
        with self._ready:
            if self.journal is None or self.resumer is not None or self.abandoned:
                return
            self.resumer = Resumer(self.journal.directory, self.exporter, self.retry, self.stats)
        self.resumer.start()

    def _start_threads(self) -> bool:
        """Start the sender threads once; False when none can run (interpreter exit)."""
        if self._threads or self._threads_failed:
            return bool(self._threads)
        for number in range(self.max_in_flight):
            thread = threading.Thread(
                target=self._run, name=f"posthog-logging-sender-{number}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # new threads cannot start at interpreter exit
                break
            self._threads.append(thread)
        self._threads_failed = not self._threads
        return bool(self._threads)

    def _run(self) -> None:
        library_thread.active = True
        while True:
            batch = self._next_batch(wait=True)
            if batch is None:
                return
            self._send(batch)

    def _send_inline(self, done: Callable[[], bool], deadline: float) -> None:
        """The senders' work on this thread, until ``done()`` or ``deadline``."""
        was_active, library_thread.active = library_thread.active, True
        try:
            while not done() and self._clock() < deadline:
                batch = self._next_batch(wait=False)
                if batch is not None:
                    self._send(batch, deadline)
                    continue
                with self._ready:
                    pause = self.congestion.pause_left()
                    if pause <= 0 and not self._in_flight:
                        return  # nothing due
                    # Wait out the pause, or for batches in flight on other threads
                    # to settle (they may come back to be retried).
                    left = max(0.0, deadline - self._clock())
                    self._wait(min(pause, left) if pause > 0 else left)
        finally:
            library_thread.active = was_active

    def _next_batch(self, *, wait: bool) -> Batch | None:
        """The next batch to post (retries first), waiting for one when ``wait``."""
        with self._ready:
            while not self._stopping:
                pause = self.congestion.pause_left()
                timeout: float | None = None
                if pause > 0:
                    timeout = pause
                elif len(self._in_flight) < self.congestion.limit:
                    batch = self._take()
                    if batch is not None:
                        batch.sent_at = self._clock()
                        self._in_flight.add(batch)
                        if self._retries or len(self.buffer) >= self.flush_at:
                            self._wake_one()  # more is ready than this batch
                        return batch
                if not wait:
                    return None
                self._wait(timeout)
            return None

    def _wake_one(self) -> None:
        """Wake one waiting thread for a ready batch, unless one already woken has
        not run yet or the requests in flight (with those to come) fill the limit."""
        if (
            self._waiting > self._woken
            and len(self._in_flight) + self._woken < self.congestion.limit
        ):
            self._woken += 1
            self._ready.notify()

    def _wait(self, timeout: float | None) -> None:
        """``_ready.wait`` counted for :meth:`_wake_one`; whoever returns first
        settles a wake-up (any waiter may be the one notified, so no notified
        batch is left without a thread looking at it)."""
        self._waiting += 1
        try:
            self._ready.wait(timeout)
        finally:
            self._waiting -= 1
            self._woken = max(0, self._woken - 1)

    def _take(self) -> Batch | None:
        if self._retries:
            return self._retries.pop(0)
        queued = len(self.buffer)
        if not queued:
            return None
        if queued < self.flush_at and not self.flushes.is_due(self.buffer.removed):
            return None
        # The backlog shared among the requests that may start now, so that
        # batches grow with it and every sender gets a part.
        free = max(1, self.congestion.limit - len(self._in_flight))
        size = min(max(self.flush_at, -(-queued // free)), self.max_request_events)
        first = self.buffer.removed
        return Batch(self.buffer.take(size, self.max_request_bytes), first)

    def _send(self, batch: Batch, deadline: float | None = None) -> None:
        """Export ``batch`` and settle its outcome; no request outlives ``deadline``
        (by default close()'s, once it is known)."""
        error: Exception | None = None
        deadline = deadline or self.flushes.deadline
        timeout = None if deadline is None else max(0.05, deadline - self._clock())
        try:
            outcome = self.exporter.export(batch.events, timeout)
        except Exception as caught:  # a bug must not lose the batch nor kill the thread
            error = caught
            outcome = Outcome(0, len(batch.events), PostResult(None, type(error).__name__))
        self._settle(batch, outcome)
        if error is not None:  # logged once settled, like every warning
            _log.error("posthog-logging: internal error while sending: %s", error, exc_info=error)
        self.losses.log_pending()

    def _settle(self, batch: Batch, outcome: Outcome) -> None:
        with self._ready:
            self._in_flight.discard(batch)
            self._last_answer = self._clock()
            if self.abandoned:  # abandon() kept or dropped its events already
                return
            delivered = self.buffer.release(batch.events[: outcome.delivered])
            if delivered:
                self.stats.add("sent", len(delivered))
                if self.journal is not None:
                    self.journal.settle(batch.first, len(delivered))
            if outcome.failure is None:
                self.congestion.succeeded(batch.sent_at)
            else:
                self._failed(batch, outcome, outcome.failure)
            self._release_waiters()
            self._ready.notify_all()

    def _failed(self, batch: Batch, outcome: Outcome, failure: PostResult) -> None:
        """Schedule a retry of the failed part, or give up on it."""
        first = batch.first + outcome.delivered
        rest = batch.events[outcome.delivered :]
        if failure.retryable:  # the server struggles, whatever becomes of this batch
            self.congestion.failed(failure, batch.sent_at)
            self._latest_failure = failure
        if self.retry.should_retry(failure, batch.attempts + 1):
            self.stats.add("retried")
            self._requeue(Batch(rest, first, batch.attempts + 1))
            return
        if failure.retryable:
            failed, untried = rest, []
            why = "retries exhausted: " + failure.describe()
        else:
            failed, untried = rest[: outcome.failed], rest[outcome.failed :]
            why = failure.describe()
        self.losses.record_lost(
            first,
            self.buffer.release(failed),
            "undeliverable",
            why,
            may_keep=True,
            failure=failure,
        )
        if untried:
            self._requeue(Batch(untried, first + len(failed), batch.attempts))

    def _requeue(self, batch: Batch) -> None:
        bisect.insort(self._retries, batch, key=lambda queued: queued.first)

    def _settled_all(self) -> bool:
        return not (self.buffer.held_events or self._in_flight or self._retries)

    def _release_waiters(self) -> None:
        """Wake flush() callers whose events are all out."""
        if not self.flushes.anyone_waiting:
            return
        unsettled = [batch.first for batch in (*self._in_flight, *self._retries)]
        self.flushes.settled(min(unsettled, default=self.buffer.removed))


class Resumer:
    """Sends, in the background and at a bounded rate, what earlier processes left
    in the journal's directory: the segments and spill files nobody holds a lock on.

    One thread, started with the sender's; it goes through the free files once
    (trying again after :data:`RESUME_RETRY_SECONDS` while PostHog fails) and
    ends, or stops when the sender does (a file it was sending keeps its ledger).
    """

    def __init__(
        self, directory: Path, exporter: Exporter, retry: RetryPolicy, stats: Stats
    ) -> None:
        self.directory = directory
        self._stop = threading.Event()
        self.files = FileSender(
            exporter,
            retry,
            stats,
            default_state_directory(),
            sleep=self._sleep,
            events_per_second=RESUME_EVENTS_PER_SECOND,
            stopping=self._stop.is_set,
        )
        self.stats = stats
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="posthog-logging-resume", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter exit: the next process resumes instead
            return
        self.thread = thread

    def stop(self) -> None:
        self._stop.set()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _run(self) -> None:
        library_thread.active = True
        try:
            while not self._stop.is_set() and self._resume_once():
                self._sleep(RESUME_RETRY_SECONDS)
        except Exception as error:  # never die silently: what is left stays for replay
            _log.exception("posthog-logging: internal error while resuming: %s", error)

    def _resume_once(self) -> bool:
        """Send every free file once; True when one failed (to be tried again)."""
        try:
            files = own_files(self.directory)
        except FileNotFoundError:
            return False
        for path in files:
            if self._stop.is_set():
                return False
            report = self.files.send(path, own_line_events)
            if report.delivered:
                self.stats.add("resumed", report.delivered)
            if report.ledger_error is not None:
                _log.warning("posthog-logging: resuming: %s", report.ledger_error)
            if report.error is not None:
                _log.warning(
                    "posthog-logging: resuming what an earlier process left: %s; "
                    "trying again in %d s",
                    report.describe(),
                    RESUME_RETRY_SECONDS,
                )
                return True
        return False
