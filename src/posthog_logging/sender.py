"""Sending: encoded events from a bounded buffer to PostHog, several requests at once.

The listener (``pipeline``) only appends encoded events to the
:class:`EventBuffer` through :meth:`Sender.add`; up to ``max_in_flight``
sender threads take batches from it and post them through the
:class:`~.transport.Transport`, so mapping never waits on HTTP.  Batches grow
with the backlog: a sender takes its share of what is buffered (at least
``flush_at`` events, at most ``max_request_events`` and ``max_request_bytes``),
and a quiet application's few events go when they are made due (the flush
interval, ``flush()``, ``close()``).

Back-pressure: a 429, 5xx or no answer halves the number of requests allowed
in flight (down to one) and pauses every sender for the longer of the
server's ``Retry-After`` and the backoff, which grows once per round of
failures (requests refused together count once); each success of a request
sent since allows one more again.  A 413 halves the batch until the halves go
through.  A failed batch waits in a retry list, oldest first, and no thread
ever sleeps on its behalf: the senders serve other batches or wait on the
condition until the pause ends.

Threads and locks: one condition (``Sender._ready``, over a re-entrant lock)
guards the buffer, the batches in flight or waiting for a retry, the limit,
the pause and the spiller.  The listener holds it to append, a sender to take
a batch and to settle its outcome; nobody holds it while posting or logging
(warnings decided under it are logged once it is released).  When no sender
thread can start (at interpreter exit), the thread that waits sends through
the same methods itself: the listener for a ``flush()`` (the caller's thread
when no listener runs either), the closing thread for ``close()``; so does a
``close()`` called on one of the library's own threads.

Order across concurrent requests is not kept: PostHog orders events by
``timestamp`` and de-duplicates on ``uuid``.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .contract import DIAGNOSTICS_LOGGER
from .stats import Stats
from .transport import EncodedEvent, PostResult, RetryPolicy, Transport

#: Requests in flight at once (each on its own kept-alive connection).
DEFAULT_MAX_IN_FLIGHT = 4
#: A request never carries more events than this (nor fewer than ``flush_at``
#: unless they are due).
MAX_REQUEST_EVENTS = 1000
#: Nor more bytes (before gzip) than this, unless one event alone is larger:
#: well inside PostHog's 20 MB request body even without gzip.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Dropped events are reported at once, then at most this often per reason (seconds).
DROP_REPORT_INTERVAL = 30.0

#: The outcome of a request that was not made because the sender stopped.
NOT_SENT = PostResult(None, "not sent: the handler was closed")

_log = logging.getLogger(DIAGNOSTICS_LOGGER)


class LibraryThread(threading.local):
    """Set while a thread works for the library (listener, senders, inline drains):
    records logged there are never consumed by the handler."""

    active = False


library_thread = LibraryThread()


class Spiller(Protocol):
    """Where undeliverable events go instead of being dropped."""

    @property
    def directory(self) -> object: ...

    def write(self, events: Iterable[EncodedEvent]) -> int: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Batch:
    """Events taken from the buffer for one request (and its retries)."""

    events: list[EncodedEvent]
    #: Sequence number of its oldest event: flush() waits on these.
    first: int
    attempts: int = 0
    #: When its latest attempt was taken to be posted (the sender's clock).
    sent_at: float = 0.0


class Outcome(NamedTuple):
    """What posting a batch (halved on 413 as needed) came to."""

    #: Events from the head of the batch that PostHog accepted.
    delivered: int
    #: Events after those that failed with ``failure`` (the rest were not tried).
    failed: int
    failure: PostResult | None


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


class Poster:
    """Posts one batch: halving it on 413 (:meth:`post`), and for ``replay``
    retrying it on this thread as the retry policy says (:meth:`deliver`).

    The sender's threads and ``replay`` post through it, so both halve the
    same way and retry the same failures (:meth:`.RetryPolicy.should_retry`).
    """

    def __init__(self, transport: Transport, stats: Stats, retry: RetryPolicy) -> None:
        self.transport = transport
        self.stats = stats
        self.retry = retry
        #: Set when the sender gives up at close(): no new request leaves.
        self.stopped = False

    def post(self, events: list[EncodedEvent], timeout: float | None = None) -> Outcome:
        """One attempt at ``events``, halving on 413 until the halves go through.

        Once the sender gave up (:meth:`Sender.abandon`), no new request leaves,
        not even the next half of a batch in flight: its events are spilled or
        counted.
        """
        if self.stopped:
            return Outcome(0, 0, NOT_SENT)
        result = self.transport.post(events, timeout)
        self.stats.add("requests")
        self.stats.add("bytes", result.body_bytes)
        if result.ok:
            return Outcome(len(events), 0, None)
        if result.too_large and len(events) > 1:
            middle = len(events) // 2
            head = self.post(events[:middle], timeout)
            if head.failure is not None:
                return head
            tail = self.post(events[middle:], timeout)
            return Outcome(head.delivered + tail.delivered, tail.failed, tail.failure)
        return Outcome(0, len(events), result)

    def deliver(
        self, events: list[EncodedEvent], sleep: Callable[[float], None] = time.sleep
    ) -> Outcome:
        """Post ``events`` now, waiting out the backoff (or ``Retry-After``) between
        tries; for ``replay``, which sends a file in order, one request at a time
        (so each failure is a round of its own)."""
        delivered, attempts = 0, 0
        while True:
            outcome = self.post(events[delivered:])
            delivered += outcome.delivered
            failure = outcome.failure
            if failure is None:
                return Outcome(delivered, 0, None)
            attempts += 1
            if not self.retry.should_retry(failure, attempts):
                return Outcome(delivered, outcome.failed, failure)
            self.stats.add("retried")
            sleep(self.retry.delay(attempts, failure.retry_after))


class Sender:
    """Posts the buffer's events with up to ``max_in_flight`` requests at once."""

    def __init__(
        self,
        transport: Transport,
        stats: Stats,
        buffer: EventBuffer,
        *,
        flush_at: int,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry: RetryPolicy | None = None,
        spiller: Spiller | None = None,
        spill_on_overflow: bool = False,
        max_request_events: int = MAX_REQUEST_EVENTS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.stats = stats
        self.buffer = buffer
        self.flush_at = flush_at
        self.max_in_flight = max_in_flight
        self.retry = retry or RetryPolicy()
        self.poster = Poster(transport, stats, self.retry)
        self.spiller = spiller
        self.spill_on_overflow = spill_on_overflow
        self.max_request_events = max(flush_at, max_request_events)
        self.max_request_bytes = max_request_bytes
        self._clock = clock
        self._ready = threading.Condition(threading.RLock())
        #: Requests allowed in flight now: halved by failures, grown by successes.
        self.limit = max_in_flight
        self._in_flight: set[Batch] = set()
        self._retries: list[Batch] = []  # oldest first
        self._failures = 0  # consecutive failed rounds: the backoff's exponent
        self._backed_off_at = float("-inf")  # when the latest round failed
        self._paused_until = 0.0
        #: Events before this sequence number go even as a batch under ``flush_at``.
        self._due = 0
        self._deadline: float | None = None  # close(): everything is due until then
        self._waiting: list[tuple[int, float, threading.Event]] = []
        self._threads: list[threading.Thread] = []
        self._threads_failed = False
        self._stopping = False
        self.abandoned = False
        self._unreported: Counter[str] = Counter()
        self._next_drop_report: dict[str, float] = {}
        self._reported_refusals: set[int | None] = set()
        #: Warnings decided under ``_ready``, logged once it is released (see _report).
        self._reports: list[tuple[str, tuple[object, ...]]] = []

    # ------------------------------------------------------------ listener side
    def add(self, event: EncodedEvent) -> None:
        """Buffer one encoded event; wake a sender when a batch is ready."""
        with self._ready:
            if self.abandoned:
                self.stats.drop("shutdown_deadline")
                return
            overflow = self.buffer.append(event)
            if overflow:
                self._undeliverable(
                    overflow,
                    "buffer_full",
                    "the buffer is full",
                    may_spill=self.spill_on_overflow,
                )
            if len(self.buffer) >= self.flush_at and self._start_threads():
                self._ready.notify()
        self._report()

    def make_due(self) -> int:
        """Everything buffered now goes, in batches however small; returns the
        sequence number that :meth:`when_settled` can wait for."""
        with self._ready:
            self._due = self.buffer.appended
            if len(self.buffer) and self._start_threads():
                self._ready.notify_all()
            return self._due

    def when_settled(self, target: int, deadline: float, done: threading.Event) -> None:
        """Set ``done`` once every event before ``target`` was sent, spilled or dropped.

        Without sender threads, sends on this thread until then or ``deadline``.
        """
        with self._ready:
            now = self._clock()
            self._waiting = [entry for entry in self._waiting if entry[1] > now]
            self._waiting.append((target, deadline, done))
            self._release_waiters()
            if done.is_set() or self._start_threads():
                return
        self._send_inline(done.is_set, deadline)

    def drain(self, deadline: float) -> None:
        """close(): send everything, however small the batches, until ``deadline``.

        On one of the library's threads (close() called from a log record of the
        senders or the listener) it sends on this thread rather than wait for
        senders that may include this very thread.
        """
        with self._ready:
            self._deadline = deadline
            if self._settled_all():
                return
            threaded = self._start_threads()
            if threaded and not library_thread.active:
                self._ready.notify_all()
                self._ready.wait_for(self._settled_all, max(0.0, deadline - self._clock()))
                return
        self._send_inline(self._settled_all, deadline)

    def abandon(self) -> None:
        """Give up: spill (or drop, counted) everything held, and stop the threads.

        Batches still in flight are spilled too: a hanging server must not cost
        them.  Should one of them arrive after all, its events keep their
        uuids, so PostHog counts them once.
        """
        with self._ready:
            if self.abandoned:
                return
            self.abandoned = self._stopping = self.poster.stopped = True
            batches = sorted([*self._in_flight, *self._retries], key=lambda batch: batch.first)
            held = [event for batch in batches for event in batch.events]
            held.extend(self.buffer.take(len(self.buffer), self.buffer.bytes))
            self._retries.clear()
            self._undeliverable(
                self.buffer.release(held),
                "shutdown_deadline",
                "not delivered by the shutdown deadline",
                may_spill=True,
            )
            if self.spiller is not None:
                self.spiller.close()
            for _, _, done in self._waiting:
                done.set()
            self._waiting.clear()
            self._ready.notify_all()
        self._report()

    # -------------------------------------------------------------- senders
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
                    pause = self._paused_until - self._clock()
                    if pause <= 0 and not self._in_flight:
                        return  # nothing due
                    # Wait out the pause, or for batches in flight on other threads
                    # to settle (they may come back to be retried).
                    left = max(0.0, deadline - self._clock())
                    self._ready.wait(min(pause, left) if pause > 0 else left)
        finally:
            library_thread.active = was_active

    def _next_batch(self, *, wait: bool) -> Batch | None:
        """The next batch to post (retries first), waiting for one when ``wait``."""
        with self._ready:
            while not self._stopping:
                pause = self._paused_until - self._clock()
                timeout: float | None = None
                if pause > 0:
                    timeout = pause
                elif len(self._in_flight) < self.limit:
                    batch = self._take()
                    if batch is not None:
                        batch.sent_at = self._clock()
                        self._in_flight.add(batch)
                        return batch
                if not wait:
                    return None
                self._ready.wait(timeout)
            return None

    def _take(self) -> Batch | None:
        if self._retries:
            return self._retries.pop(0)
        queued = len(self.buffer)
        if not queued:
            return None
        due = self._deadline is not None or self.buffer.removed < self._due
        if queued < self.flush_at and not due:
            return None
        # The backlog shared among the requests that may start now, so that
        # batches grow with it and every sender gets a part.
        free = max(1, self.limit - len(self._in_flight))
        size = min(max(self.flush_at, -(-queued // free)), self.max_request_events)
        first = self.buffer.removed
        return Batch(self.buffer.take(size, self.max_request_bytes), first)

    def _send(self, batch: Batch, deadline: float | None = None) -> None:
        """Post ``batch`` and settle its outcome; no request outlives ``deadline``
        (by default close()'s, once it is known)."""
        error: Exception | None = None
        try:
            outcome = self.poster.post(batch.events, self._timeout(deadline or self._deadline))
        except Exception as caught:  # a bug must not lose the batch nor kill the thread
            error = caught
            outcome = Outcome(0, len(batch.events), PostResult(None, type(error).__name__))
        self._settle(batch, outcome)
        if error is not None:  # logged once settled, like every warning (see _report)
            _log.error("posthog-logging: internal error while sending: %s", error, exc_info=error)
        self._report()

    def _timeout(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(0.05, min(self.transport.timeout, deadline - self._clock()))

    def _settle(self, batch: Batch, outcome: Outcome) -> None:
        with self._ready:
            self._in_flight.discard(batch)
            if self.abandoned:  # abandon() spilled or dropped its events already
                return
            delivered = self.buffer.release(batch.events[: outcome.delivered])
            if delivered:
                self.stats.add("sent", len(delivered))
            if outcome.failure is None:
                if batch.sent_at >= self._backed_off_at:  # not an answer from before a failure
                    self._failures = 0
                    self.limit = min(self.max_in_flight, self.limit + 1)
            else:
                self._failed(batch, outcome, outcome.failure)
            self._release_waiters()
            self._ready.notify_all()

    def _failed(self, batch: Batch, outcome: Outcome, failure: PostResult) -> None:
        """Schedule a retry of the failed part, or give up on it."""
        rest = batch.events[outcome.delivered :]
        if failure.retryable:  # the server struggles, whatever becomes of this batch
            self._back_off(failure, batch.sent_at)
        if self.retry.should_retry(failure, batch.attempts + 1):
            self.stats.add("retried")
            self._requeue(Batch(rest, batch.first, batch.attempts + 1))
            return
        if failure.retryable:
            failed, untried = rest, []
            why = "retries exhausted: " + failure.describe()
        else:
            failed, untried = rest[: outcome.failed], rest[outcome.failed :]
            why = failure.describe()
        self._undeliverable(
            self.buffer.release(failed), "undeliverable", why, may_spill=True, failure=failure
        )
        if untried:
            self._requeue(Batch(untried, batch.first, batch.attempts))

    def _back_off(self, failure: PostResult, sent_at: float) -> None:
        """The server is struggling: fewer requests at once, and none for a while.

        Each refusal halves the requests allowed in flight, but the backoff grows
        once per round, as TCP's does: the failures of requests sent before the
        latest back-off belong to the round it paid for already (four requests
        refused at once pause the senders as one would, not as four in a row).
        """
        self.limit = max(1, self.limit // 2)
        if sent_at >= self._backed_off_at:
            self._failures += 1
            self._backed_off_at = self._clock()
        delay = self.retry.delay(self._failures, failure.retry_after)
        self._paused_until = max(self._paused_until, self._clock() + delay)

    def _requeue(self, batch: Batch) -> None:
        bisect.insort(self._retries, batch, key=lambda queued: queued.first)

    def _settled_all(self) -> bool:
        return not (self.buffer.held_events or self._in_flight or self._retries)

    def _release_waiters(self) -> None:
        """Wake flush() callers whose events are all out."""
        if not self._waiting:
            return
        unsettled = [batch.first for batch in (*self._in_flight, *self._retries)]
        oldest = min(unsettled, default=self.buffer.removed)
        still = []
        for entry in self._waiting:
            if oldest >= entry[0]:
                entry[2].set()
            else:
                still.append(entry)
        self._waiting = still

    def _undeliverable(
        self,
        events: list[EncodedEvent],
        reason: str,
        why: str,
        *,
        may_spill: bool,
        failure: PostResult | None = None,
    ) -> None:
        """Spill events that cannot be sent (when a spill dir is set), else drop them."""
        if not events:
            return
        if may_spill and self.spiller is not None:
            try:
                self.stats.add("spilled", self.spiller.write(events))
            except OSError as error:
                why = f"{why}; spilling failed too ({error})"
            else:
                self._report_refusal(failure, len(events))
                return
        total = self.stats.drop(reason, len(events))
        self._unreported[reason] += len(events)
        now = self._clock()
        if now >= self._next_drop_report.get(reason, now):
            self._reports.append(
                (
                    "posthog-logging: dropped %d events (%s; %d %s in all)",
                    (self._unreported.pop(reason), why, total, reason),
                )
            )
            self._next_drop_report[reason] = now + DROP_REPORT_INTERVAL

    def _report_refusal(self, failure: PostResult | None, count: int) -> None:
        """A refused batch that was spilled is reported too, once per status."""
        if failure is None or failure.status in self._reported_refusals or self.spiller is None:
            return
        self._reported_refusals.add(failure.status)
        self._reports.append(
            (
                "posthog-logging: PostHog did not accept %d events (%s); spilled to %s for replay",
                (count, failure.describe(), self.spiller.directory),
            )
        )

    def _report(self) -> None:
        """Log the warnings decided under ``_ready``, after releasing it: a user's
        handler on them may be slow, or even call close(), which must find every
        batch settled (requeued or given up) and the lock free."""
        with self._ready:
            if not self._reports:
                return
            reports, self._reports = self._reports, []
        for message, args in reports:
            _log.warning(message, *args)
