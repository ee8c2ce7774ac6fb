"""The listener's work: map records, buffer encoded events, send them on time.

Everything here runs on one thread at a time (the listener's, or the closing
thread's when no listener could start), so it keeps its state without locks.
Nothing here sleeps while there is work: a failed request schedules its retry
and the listener goes on mapping records until the retry is due, so an outage
fills the bounded buffer instead of the caller's queue.  Only ``close()``
waits out backoffs, up to its deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .contract import DIAGNOSTICS_LOGGER, SpanEvent
from .mapping import Event, EventMapper, SpanRejected
from .transport import (
    MAX_EVENT_BYTES,
    EncodedEvent,
    PostResult,
    RetryPolicy,
    Transport,
    fit_event,
)
from .values import safe_str, time_ms

#: A request never carries more events than this, nor fewer than ``flush_at``.
MAX_REQUEST_EVENTS = 100
#: Nor more bytes (before gzip) than this, unless one event alone is larger.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
#: How many errors of one kind are logged in full before they are only counted.
LOGGED_ERRORS_PER_REASON = 5
#: Dropped events are reported at once, then at most this often per reason (seconds).
DROP_REPORT_INTERVAL = 30.0

_log = logging.getLogger(DIAGNOSTICS_LOGGER)

SPAN_ITEM = 0
FEEDBACK_ITEM = 1
#: What the handler queues for a record: kind, payload, span_event, record.created.
RecordItem = tuple[int, Any, Any, float]


@dataclass
class FlushRequest:
    """Asks the listener to send everything queued before it, by ``deadline``."""

    deadline: float
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class CloseRequest(FlushRequest):
    """Asks the listener to abort open spans (§1.2), send everything, then give up."""

    now_ms: int = 0


#: Counters ``stats()`` lists from the start, zero until something happens.
COUNTERS = (
    "sent",
    "mapped",
    "requests",
    "bytes",
    "retried",
    "spilled",
    "shrunk_events",
    "truncated_properties",
)


class Stats:
    """Thread-safe counters behind ``PosthogLogHandler.stats()``.

    The lock is re-entrant: drops are counted on the caller's thread, where a
    signal handler that logs may interrupt a count in progress.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._dropped: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def drop(self, reason: str, amount: int = 1) -> int:
        """Count dropped events; returns how many were dropped for ``reason`` so far."""
        with self._lock:
            self._dropped[reason] += amount
            return self._dropped[reason]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            counts["dropped"] = dict(self._dropped)
            return counts


class Spiller(Protocol):
    """Where undeliverable events go instead of being dropped."""

    def write(self, events: Iterable[EncodedEvent]) -> int: ...

    def close(self) -> None: ...


class EventBuffer:
    """A FIFO of encoded events bounded in count and in bytes."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[EncodedEvent] = deque()
        self.bytes = 0
        #: Events ever taken off the head (sent, spilled or dropped): flush progress.
        self.removed = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def appended(self) -> int:
        return self.removed + len(self._events)

    def append(self, event: EncodedEvent) -> list[EncodedEvent]:
        """Add at the tail; returns the oldest events pushed out by the bound."""
        self._events.append(event)
        self.bytes += len(event)
        overflow: list[EncodedEvent] = []
        while len(self._events) > 1 and (
            len(self._events) > self.max_events or self.bytes > self.max_bytes
        ):
            overflow.extend(self.pop(1))
        return overflow

    def head(self, count: int, max_bytes: int) -> list[EncodedEvent]:
        """Up to ``count`` events from the head, within ``max_bytes`` (at least one)."""
        taken: list[EncodedEvent] = []
        size = 0
        for event in self._events:
            if len(taken) == count or (taken and size + len(event) > max_bytes):
                break
            taken.append(event)
            size += len(event)
        return taken

    def pop(self, count: int) -> list[EncodedEvent]:
        popped = [self._events.popleft() for _ in range(min(count, len(self._events)))]
        self.bytes -= sum(len(event) for event in popped)
        self.removed += len(popped)
        return popped


class EventPipeline:
    """Maps records to events and moves them from the buffer to PostHog."""

    def __init__(
        self,
        mapper: EventMapper,
        transport: Transport,
        stats: Stats,
        buffer: EventBuffer,
        *,
        flush_at: int,
        flush_interval: float,
        retry: RetryPolicy | None = None,
        spiller: Spiller | None = None,
        spill_on_overflow: bool = False,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mapper = mapper
        self.transport = transport
        self.stats = stats
        self.buffer = buffer
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.retry = retry or RetryPolicy()
        self.spiller = spiller
        self.spill_on_overflow = spill_on_overflow
        self.max_event_bytes = max_event_bytes
        self.max_request_bytes = max_request_bytes
        self._clock = clock
        self.next_flush = clock() + flush_interval
        self._retry_at: float | None = None
        self._failures = 0
        self._waiting: list[tuple[int, FlushRequest]] = []
        #: Guards the mapper, the buffer and the spiller (everything but HTTP): the
        #: closing thread may take over when the listener hangs in a request.
        self._buffer_lock = threading.RLock()
        self.abandoned = False
        #: Drops not yet reported, and when each reason may be reported again.
        self._unreported: Counter[str] = Counter()
        self._next_drop_report: dict[str, float] = {}

    # ------------------------------------------------------------ scheduling
    def seconds_until_due(self) -> float:
        """How long the listener may block before :meth:`on_timer` has work."""
        due = [self.next_flush]
        if self._retry_at is not None:
            due.append(self._retry_at)
        expiry = self.mapper.traces.next_expiry()
        if expiry is not None:
            due.append(expiry)
        due.extend(request.deadline for _, request in self._waiting)
        return max(0.0, min(due) - self._clock())

    def on_timer(self) -> None:
        """Time passed: interval flush, a retry that is due, clean-ups, flush deadlines.

        Never raises: it runs inside the listener's ``dequeue``, where an exception
        would end the listener thread.
        """
        try:
            now = self._clock()
            if now >= self.next_flush:
                self.next_flush = now + self.flush_interval
                self._pump(force=True)
            elif self._retry_at is not None and now >= self._retry_at:
                self._pump(force=bool(self._waiting))
            with self._buffer_lock:
                self.mapper.traces.expire()
        except Exception as error:
            self._internal_error(error)
        self._release_flushes()

    # ------------------------------------------------------------- records
    def process(self, item: Any) -> None:
        """Handle one queue item; never raises."""
        try:
            if isinstance(item, CloseRequest):
                self._close(item)
            elif isinstance(item, FlushRequest):
                self._waiting.append((self.buffer.appended, item))
                self._pump(force=True)
            else:
                with self._buffer_lock:
                    self._map(item)
                self._pump(force=bool(self._waiting))
        except Exception as error:  # keep the listener alive whatever happens
            self._internal_error(error)
        self._release_flushes()

    def _internal_error(self, error: Exception) -> None:
        self.stats.drop("internal_error")
        _log.exception("posthog-logging: internal error: %s", error)

    def _map(self, item: RecordItem) -> None:
        self.mapper.traces.expire()
        kind, payload, span_event, created = item
        now_ms = time_ms(created) or 0
        try:
            if kind == FEEDBACK_ITEM:
                events = [self.mapper.map_feedback(payload, now_ms)]
            else:
                events = self.mapper.map_span(payload, _span_event(span_event), now_ms)
        except SpanRejected as rejected:
            self.reject(rejected, feedback=kind == FEEDBACK_ITEM)
            return
        except Exception as error:  # user objects can fail in any way while being read
            what = f"could not be read ({type(error).__name__}: {safe_str(error)[:200]})"
            self.reject(SpanRejected(what), feedback=kind == FEEDBACK_ITEM)
            return
        self.add(events)

    def reject(self, rejected: SpanRejected, *, feedback: bool = False) -> None:
        """Count and report a record that could not become an event."""
        reason = "invalid_feedback" if feedback else "invalid_span"
        seen = self.stats.drop(reason)
        if feedback and "traceId" in str(rejected):
            _log.debug("posthog: feedback dropped: %s", rejected)
        elif seen <= LOGGED_ERRORS_PER_REASON:
            _log.error("posthog: exporter error: %s", rejected)
        elif seen == LOGGED_ERRORS_PER_REASON + 1:
            _log.error("posthog: exporter error: more records dropped as %s; counting only", reason)

    def add(self, events: list[Event]) -> None:
        """Encode (shrinking what is too large) and buffer built events."""
        for event in events:
            encoded, truncated = fit_event(event, self.max_event_bytes)
            if truncated:
                self._note_shrunk(truncated)
            with self._buffer_lock:
                if self.abandoned:
                    self.stats.drop("shutdown_deadline")
                    continue
                overflow = self.buffer.append(encoded)
                if overflow:
                    self._undeliverable(
                        overflow, "buffer_full", "the buffer is full", self.spill_on_overflow
                    )
        self.stats.add("mapped", len(events))

    def _note_shrunk(self, truncated: int) -> None:
        self.stats.add("shrunk_events")
        self.stats.add("truncated_properties", truncated)
        if self.stats.snapshot().get("shrunk_events") == 1:
            _log.warning(
                "posthog-logging: an event was over %d bytes; its largest properties were "
                "truncated (counted in stats()['shrunk_events'])",
                self.max_event_bytes,
            )

    # -------------------------------------------------------------- sending
    def _pump(self, *, force: bool, deadline: float | None = None) -> None:
        """Send what may go now: full batches, or everything when ``force``."""
        while not self.abandoned and self.buffer and (force or len(self.buffer) >= self.flush_at):
            if self._retry_at is not None and self._clock() < self._retry_at:
                return
            size = max(self.flush_at, MAX_REQUEST_EVENTS) if force else self.flush_at
            if not self._send_head(size, deadline):
                return

    def _send_head(self, size: int, deadline: float | None) -> bool:
        """Try the batch at the head of the buffer; False when it must wait for a retry."""
        with self._buffer_lock:
            batch = self.buffer.head(size, self.max_request_bytes)
        delivered, failed, result = self._post_halving(batch, deadline)
        with self._buffer_lock:
            if self.abandoned:  # close() gave up on us and spilled the buffer meanwhile
                return False
            self._sent(self.buffer.pop(delivered))
            return self._after_failure(result, failed)

    def _after_failure(self, result: PostResult | None, failed: int) -> bool:
        """Schedule a retry (False) or give up on the failed events (True)."""
        if result is None:
            self._failures, self._retry_at = 0, None
            return True
        self._failures += 1
        if result.retryable and self._failures < self.retry.max_attempts:
            self.stats.add("retried")
            delay = self.retry.delay(self._failures, result.retry_after)
            self._retry_at = self._clock() + delay
            return False
        self._failures, self._retry_at = 0, None
        reason = "retries exhausted: " if result.retryable else ""
        self._undeliverable(
            self.buffer.pop(failed), "undeliverable", reason + result.describe(), True
        )
        return True

    def _post_halving(
        self, batch: list[EncodedEvent], deadline: float | None
    ) -> tuple[int, int, PostResult | None]:
        """Post ``batch``, halving it on 413; (delivered from head, failed after that, failure)."""
        result = self.transport.post(batch, self._timeout(deadline))
        self.stats.add("requests")
        self.stats.add("bytes", result.body_bytes)
        if result.ok:
            return len(batch), 0, None
        if result.too_large and len(batch) > 1:
            middle = len(batch) // 2
            delivered, failed, failure = self._post_halving(batch[:middle], deadline)
            if failure is not None:
                return delivered, failed, failure
            more, failed, failure = self._post_halving(batch[middle:], deadline)
            return delivered + more, failed, failure
        return 0, len(batch), result

    def _timeout(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(0.05, min(self.transport.timeout, deadline - self._clock()))

    def _sent(self, events: list[EncodedEvent]) -> None:
        if events:
            self.stats.add("sent", len(events))

    def _undeliverable(
        self, events: list[EncodedEvent], reason: str, why: str, may_spill: bool
    ) -> None:
        """Spill events that cannot be sent (when a spill dir is set), else drop them."""
        if not events:
            return
        if may_spill and self.spiller is not None:
            try:
                self.stats.add("spilled", self.spiller.write(events))
                return
            except OSError as error:
                why = f"{why}; spilling failed too ({error})"
        total = self.stats.drop(reason, len(events))
        self._unreported[reason] += len(events)
        now = self._clock()
        if now >= self._next_drop_report.get(reason, now):
            _log.warning(
                "posthog-logging: dropped %d events (%s; %d %s in all)",
                self._unreported.pop(reason),
                why,
                total,
                reason,
            )
            self._next_drop_report[reason] = now + DROP_REPORT_INTERVAL

    # --------------------------------------------------------- flush/close
    def _release_flushes(self) -> None:
        """Wake flush() callers whose events are out, or whose deadline passed."""
        if not self._waiting:
            return
        now = self._clock()
        still: list[tuple[int, FlushRequest]] = []
        for target, request in self._waiting:
            if self.buffer.removed >= target or now >= request.deadline:
                request.done.set()
            else:
                still.append((target, request))
        self._waiting = still

    def rescue(self, items: list[Any], now_ms: int) -> None:
        """Close without the listener: it is stuck in a request at the shutdown deadline.

        Runs on the closing thread.  Maps the records the listener never reached,
        aborts the open spans, and abandons the buffer (spilled, or dropped and
        counted).  HTTP is the only thing the listener does outside the lock, so
        this does not wait for the hanging request.
        """
        with self._buffer_lock:
            for item in items:
                if isinstance(item, tuple):
                    self._map(item)
                elif isinstance(item, FlushRequest):
                    item.done.set()
            self.add(self.mapper.abort_open_spans(now_ms))
            self.abandon()

    def abandon(self) -> None:
        """Give up: spill (or drop, counted) whatever is still buffered, and stop sending.

        The closing thread calls this itself when the listener is still stuck in a
        request at the shutdown deadline, so a hanging server cannot cost the
        buffered events.  A batch that was in flight may then be both delivered and
        spilled; its events keep their uuids, so PostHog counts them once.
        """
        with self._buffer_lock:
            if self.abandoned:
                return
            self.abandoned = True
            self._undeliverable(
                self.buffer.pop(len(self.buffer)),
                "shutdown_deadline",
                "not delivered by the shutdown deadline",
                True,
            )
            if self.spiller is not None:
                self.spiller.close()

    def _close(self, request: CloseRequest) -> None:
        """Abort open spans, then send until empty or the deadline; spill the rest."""
        try:
            with self._buffer_lock:
                self.add(self.mapper.abort_open_spans(request.now_ms))
            while self.buffer and self._clock() < request.deadline:
                self._pump(force=True, deadline=request.deadline)
                if self.buffer and self._retry_at is not None:
                    pause = min(self._retry_at, request.deadline) - self._clock()
                    if pause > 0:
                        time.sleep(pause)
            self.abandon()
        finally:
            for _, waiting in self._waiting:
                waiting.done.set()
            self._waiting = []
            request.done.set()


def _span_event(value: Any) -> SpanEvent:
    if value is None:
        return SpanEvent.ENDED
    if isinstance(value, SpanEvent):
        return value
    if not isinstance(value, str):
        raise SpanRejected(f"span_event must be a string, not {type(value).__name__}")
    try:
        return SpanEvent(value)  # exactly Mastra's values; anything else is dropped (§1.1)
    except ValueError:
        raise SpanRejected(f"unknown span_event {value[:40]!r}") from None
