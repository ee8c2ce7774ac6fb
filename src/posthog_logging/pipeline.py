"""The listener's side: records in, encoded events out to the sender.

:class:`EventListener` is the handler's listener thread: it takes
the records the caller queued and hands them to the :class:`EventPipeline`,
which maps each to events (:class:`EventEncoder`), encodes them and appends
them to the :class:`~.sender.Sender`'s buffer.  HTTP happens on the sender's
threads, so mapping never waits on the network; the listener's waits double
as the timers (flush interval, trace-state expiry).  Section numbers (§1.2) are
those of ``docs/mapping-rules.md``.

Threads and locks: the pipeline's lock guards the mapper (its trace state).
The listener holds it while it maps a record; the closing thread takes it
when the listener misses the shutdown deadline and it aborts the open spans
itself (:meth:`EventPipeline.take_over`), and when no listener could start, the
caller's thread does the listener's work (under the handler's lifecycle lock).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging.handlers import QueueListener
from typing import Any

from .contract import DIAGNOSTICS_LOGGER, SpanEvent
from .diagnostics import LogThrottle
from .encoding import MAX_EVENT_BYTES, EncodedEvent, fit_event
from .exporter import HttpExporter
from .journal import Journal
from .mapping import DroppedProperties, Event, EventMapper, MappingOptions, RecordRejected
from .redaction import OutgoingEvents
from .sampling import sampler_for
from .sender import EventBuffer, Sender, library_thread
from .settings import Settings
from .stats import Stats
from .transport import Transport
from .values import safe_str, time_ms

#: How many errors of one kind are logged in full before they are only counted.
LOGGED_ERRORS_PER_REASON = 5

_log = logging.getLogger(DIAGNOSTICS_LOGGER)

SPAN_ITEM = 0
FEEDBACK_ITEM = 1
POSTHOG_EVENT_ITEM = 2
#: The stats()['dropped'] reason of each record kind the mapping rejects.
REJECT_REASONS = {
    SPAN_ITEM: "invalid_span",
    FEEDBACK_ITEM: "invalid_feedback",
    POSTHOG_EVENT_ITEM: "invalid_posthog_event",
}


#: What the handler queues for one record: ``(kind, payload, span_event, created)``,
#: that is the record's kind (SPAN_ITEM, FEEDBACK_ITEM or POSTHOG_EVENT_ITEM), its
#: span, feedback or PostHog event as snapshotted on the caller's thread, its
#: ``span_event`` (checked when mapped) and ``record.created`` ("now" for the
#: mapping).  A plain tuple, not a NamedTuple: the caller's thread builds one per
#: span, and a NamedTuple costs it five times as much (bench/: caller cost);
#: :meth:`EventEncoder.map` unpacks it by these names.
RecordItem = tuple[int, Any, Any, float]


@dataclass
class FlushRequest:
    """Asks the listener to send everything queued before it, by ``deadline``."""

    deadline: float
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class CloseRequest(FlushRequest):
    """Asks the listener to map what is queued before it and abort the open spans (§1.2)."""

    now_ms: int = 0


def is_record(item: Any) -> bool:
    """Whether a queue item is a record (a :data:`RecordItem`), not a request or the sentinel."""
    return isinstance(item, tuple)


def release_unread(items: Iterable[Any]) -> int:
    """Queue items that will never be carried out: releases the flush() and close()
    callers waiting on the requests among them; returns how many records they held."""
    records = 0
    for item in items:
        if is_record(item):
            records += 1
        elif isinstance(item, FlushRequest):
            item.done.set()
    return records


class EventEncoder:
    """Record → events → encoded JSON: the one path, for the listener and for replay."""

    def __init__(
        self, options: MappingOptions, stats: Stats, *, max_event_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        self.stats = stats
        self.max_event_bytes = max_event_bytes
        self.mapper = EventMapper(
            options,
            on_reject=self.reject,
            on_dropped_property=DroppedProperties(lambda: stats.add("dropped_properties")),
        )
        self._reject_logs = LogThrottle(LOGGED_ERRORS_PER_REASON)
        self._shrink_logs = LogThrottle()

    def map(self, item: RecordItem) -> list[Event] | None:
        """The events of one record; None when it was rejected (counted and reported)."""
        kind, payload, span_event, created = item
        now_ms = time_ms(created) or 0
        try:
            if kind == FEEDBACK_ITEM:
                return [self.mapper.map_feedback(payload, now_ms)]
            if kind == POSTHOG_EVENT_ITEM:
                return [self.mapper.map_posthog_event(payload, now_ms)]
            return self.mapper.map_span(payload, _span_event(span_event), now_ms)
        except RecordRejected as rejected:
            self.reject(rejected, kind=kind)
        except Exception as error:  # user objects can fail in any way while being read
            what = f"could not be read ({type(error).__name__}: {safe_str(error)[:200]})"
            self.reject(RecordRejected(what), kind=kind)
        return None

    def reject(self, rejected: RecordRejected, *, kind: int = SPAN_ITEM) -> None:
        """Count and report a record that could not become an event."""
        reason = REJECT_REASONS[kind]
        self.stats.drop(reason)
        verdict = self._reject_logs.verdict(reason)
        if kind == FEEDBACK_ITEM and "traceId" in str(rejected):
            _log.debug("posthog: feedback dropped: %s", rejected)
        elif verdict == LogThrottle.FULL:
            _log.error("posthog: exporter error: %s", rejected)
        elif verdict == LogThrottle.LAST:
            _log.error("posthog: exporter error: more records dropped as %s; counting only", reason)

    def encode(self, event: Event) -> EncodedEvent:
        """JSON text of a built event, its largest properties cut if it is too large."""
        encoded, truncated = fit_event(event, self.max_event_bytes)
        if truncated:
            self.stats.add("truncated_properties", truncated)
            self.stats.add("shrunk_events")
            if self._shrink_logs.allows("shrunk_events"):
                _log.warning(
                    "posthog-logging: an event was over %d bytes; its largest properties were "
                    "truncated (counted in stats()['shrunk_events'])",
                    self.max_event_bytes,
                )
        return encoded


class EventPipeline:
    """Maps queued records to events and hands them, encoded, to the sender."""

    def __init__(
        self,
        encoder: EventEncoder,
        sender: Sender,
        *,
        flush_interval: float,
        clock: Callable[[], float] = time.monotonic,
        outgoing: OutgoingEvents | None = None,
    ) -> None:
        self.encoder = encoder
        #: Sampling, mask and before_send (:mod:`.redaction`), when given.
        self.outgoing = outgoing
        self.mapper = encoder.mapper
        self.sender = sender
        self.stats = encoder.stats
        self.flush_interval = flush_interval
        self._clock = clock
        self.next_flush = clock() + flush_interval
        self._lock = threading.RLock()

    @property
    def buffer(self) -> EventBuffer:
        return self.sender.buffer

    # ------------------------------------------------------------ scheduling
    def seconds_until_due(self) -> float:
        """How long the listener may block before :meth:`on_timer` has work."""
        due = self.next_flush
        expiry = self.mapper.traces.next_expiry()
        if expiry is not None:
            due = min(due, expiry)
        return max(0.0, due - self._clock())

    def on_timer(self) -> None:
        """Time passed: the interval flush, trace-state clean-up.

        Never raises: it runs inside the listener's ``dequeue``, where an exception
        would end the listener thread.
        """
        try:
            now = self._clock()
            if now >= self.next_flush:
                self.next_flush = now + self.flush_interval
                self.sender.make_due()
            with self._lock:
                self.mapper.traces.expire()
        except Exception as error:
            self._internal_error(error)

    # ------------------------------------------------------------- records
    def process(self, item: Any) -> None:
        """Handle one queue item; never raises."""
        try:
            if isinstance(item, CloseRequest):
                self.abort_open_spans(item.now_ms)
                self.sender.make_due()  # the senders start on it while close() is reached
                item.done.set()
            elif isinstance(item, FlushRequest):
                self.sender.when_settled(self.sender.make_due(), item.deadline, item.done)
            else:
                self._map(item)
        except Exception as error:  # keep the listener alive whatever happens
            self._internal_error(error)

    def _internal_error(self, error: Exception) -> None:
        self.stats.drop("internal_error")
        _log.exception("posthog-logging: internal error: %s", error)

    def _map(self, item: RecordItem) -> None:
        with self._lock:
            self.mapper.traces.expire()
            events = self.encoder.map(item)
            if events:
                self.add(events)

    def add(self, events: list[Event]) -> None:
        """Every built event passes here on its way out: sampled, masked and passed
        to ``before_send`` (:mod:`.redaction`), encoded, then buffered.  ``mapped``
        counts every built event, whatever the hooks keep."""
        self.stats.add("mapped", len(events))
        if self.outgoing is not None:
            events = self.outgoing.filter(events)
        if events:  # one journal write for all of a record's events
            self.sender.add_many([self.encoder.encode(event) for event in events])

    def abort_open_spans(self, now_ms: int, *, wait: bool = True) -> None:
        """§1.2 at close: every span still open goes out with the SHUTDOWN error.

        With ``wait=False``, nothing is done while the listener holds the lock (it is
        inside a record): it aborts the open spans itself when it goes on.
        """
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self.add(self.mapper.abort_open_spans(now_ms))
        finally:
            self._lock.release()

    def take_over(self, items: list[Any], now_ms: int) -> int:
        """The closing thread takes over from a listener that missed the shutdown
        deadline: releases waiting flush() callers and aborts the open spans.

        Returns how many records in ``items`` were never mapped.  They are not
        mapped here: that would overrun the deadline (records queue far faster
        than they map).
        """
        unmapped = release_unread(items)
        # The listener holds the lock while it maps a record: one held up inside it (a
        # mask or before_send that blocks) would hold close() past its deadline too.
        # Then the listener aborts the open spans itself when it goes on, and the
        # sender, given up by then, counts their events as dropped ("shutdown_deadline").
        self.abort_open_spans(now_ms, wait=False)
        return unmapped


def build_encoder(settings: Settings, stats: Stats) -> EventEncoder:
    """The mapping and encoding of a handler's records."""
    # One event never takes more than half the buffer: a larger one is shrunk,
    # not buffered at the cost of everything else held.  From a 16 MiB bound up,
    # that leaves PostHog's limit (max_event_bytes) the only one that cuts.
    max_event_bytes = min(settings.max_event_bytes, settings.max_buffer_bytes // 2)
    return EventEncoder(settings.mapping_options, stats, max_event_bytes=max_event_bytes)


def build_outgoing(settings: Settings, stats: Stats) -> OutgoingEvents:
    """What leaves the process (:mod:`.redaction`), for a handler's settings."""
    return OutgoingEvents(
        stats,
        privacy_mode=settings.privacy_mode,
        sampler=sampler_for(settings.sample_rate),
        mask=settings.mask,
        before_send=settings.before_send,
    )


def build_pipeline(settings: Settings, transport: Transport, stats: Stats) -> EventPipeline:
    """A handler's pipeline: encoder, what leaves the process, and the sender (with
    the write-ahead journal when ``spill_dir`` is set)."""
    journal = (
        None
        if settings.spill_dir is None
        else Journal(settings.spill_dir, fsync_interval=settings.fsync_interval)
    )
    sender = Sender(
        HttpExporter(transport, stats),
        stats,
        EventBuffer(settings.max_buffer_events, settings.max_buffer_bytes),
        flush_at=settings.flush_at,
        max_in_flight=settings.max_in_flight,
        retry=settings.retry,
        journal=journal,
        spill_on_overflow=settings.overflow == "spill",
    )
    return EventPipeline(
        build_encoder(settings, stats),
        sender,
        flush_interval=settings.flush_interval,
        outgoing=build_outgoing(settings, stats),
    )


#: The listener thread's name (the sender threads are ``posthog-logging-sender-N``).
LISTENER_THREAD_NAME = "posthog-logging-listener"


class EventListener(QueueListener):
    """The handler's listener: a thread of its own that carries queued items to the
    pipeline, and whose waits double as the pipeline's timers.

    A ``QueueListener`` by type, as ``docs/api.md`` promises, but with its own loop
    (:meth:`_run`) and thread: it relies on none of the base class's internals.
    It stops once it carried out a :class:`CloseRequest`, not at a sentinel queued
    after it: a caller making room in a full queue puts the requests it takes off
    back at the tail, where a sentinel queued behind the request could overtake
    it.  The sentinel (None) stops it too, for a listener the shutdown left
    running (late, past its deadline).
    """

    def __init__(self, event_queue: queue.SimpleQueue[Any], pipeline: EventPipeline) -> None:
        super().__init__(event_queue)
        self.event_queue = event_queue
        self.pipeline = pipeline
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (daemon: a process must be able to exit without close())."""
        thread = threading.Thread(target=self._run, name=LISTENER_THREAD_NAME, daemon=True)
        thread.start()
        self.thread = thread

    def enqueue_sentinel(self) -> None:
        self.event_queue.put(None)

    def stop(self) -> None:
        """Stop after what is queued now, and wait for the thread."""
        thread = self.thread
        if thread is not None:
            self.enqueue_sentinel()
            thread.join()
            self.thread = None

    def _run(self) -> None:
        library_thread.active = True  # this thread's own log records are never consumed
        event_queue, pipeline = self.event_queue, self.pipeline
        backlog = 0
        while True:
            try:
                item = event_queue.get(True, pipeline.seconds_until_due())
            except queue.Empty:
                pipeline.on_timer()
                continue
            if item is None:
                return
            pipeline.process(item)
            if isinstance(item, CloseRequest):
                return
            # While the application is logging (the queue grows), hand the GIL back
            # after every record: its threads come first, and the listener catches
            # up when they pause (bench/: a burst costs 0.9x a QueueHandler instead
            # of 1.3x).  When nothing new arrives, run at full speed.
            queued = event_queue.qsize()
            if queued > backlog:
                time.sleep(0)
            backlog = queued


def _span_event(value: Any) -> SpanEvent:
    if value is None:
        return SpanEvent.ENDED
    if isinstance(value, SpanEvent):
        return value
    if not isinstance(value, str):
        raise RecordRejected(f"span_event must be a string, not {type(value).__name__}")
    try:
        return SpanEvent(value)  # exactly Mastra's values; anything else is dropped (§1.1)
    except ValueError:
        raise RecordRejected(f"unknown span_event {value[:40]!r}") from None
