"""``PosthogLogHandler``: span records in, PostHog LLM-analytics events out.

This module is the caller's side only: it validates the configuration,
snapshots each record's span on the caller's thread (as cheaply as the
standard library's ``QueueHandler``), queues it, and owns the lifecycle.
Mapping happens on the pipeline's ``EventListener`` thread and HTTP on the
sender's threads (``pipeline``, ``sender``); the handler starts its listener
itself (lazily, and again in a forked child) because ``dictConfig`` on 3.12+
builds but never starts listeners.

Shutdown is owned here too, in :meth:`PosthogLogHandler.close`, step by step.
``logging.shutdown()`` (run at exit) calls ``flush()`` and ``close()`` with the
handler's lock held; no thread of the library takes that lock, so waiting for
them there is safe.  If no listener could be started (new threads may fail at
interpreter exit), the calling thread does the listener's and the senders'
work itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from . import diagnostics
from .config import (
    PRIVACY_MODE_ENV,
    SERVERLESS_ENV,
    flag_setting,
    hook_setting,
    optional_str,
    positive_int,
    positive_seconds,
    require_bool,
    resolve_api_key,
    resolve_host,
    sample_rate_setting,
)
from .congestion import RetryPolicy
from .contract import (
    FEEDBACK_ATTR,
    POSTHOG_EVENT_ATTR,
    SPAN_ATTR,
    SPAN_EVENT_ATTR,
    SupportsSpanDict,
)
from .encoding import MAX_EVENT_BYTES
from .exporter import HttpExporter
from .journal import DEFAULT_FSYNC_INTERVAL, Journal
from .mapping import MappingOptions
from .mapping.logs import is_own_logger, log_event_span
from .pipeline import (
    FEEDBACK_ITEM,
    POSTHOG_EVENT_ITEM,
    SPAN_ITEM,
    CloseRequest,
    EventEncoder,
    EventListener,
    EventPipeline,
    FlushRequest,
    RecordItem,
    is_record,
    release_unread,
)
from .processes import WorkerExit
from .records import payload_fields
from .redaction import BeforeSend, Mask, OutgoingEvents
from .sampling import sampler_for
from .sender import DEFAULT_MAX_IN_FLIGHT, EventBuffer, Sender, library_thread
from .servers import ServerExit
from .stats import Stats
from .transport import Transport
from .values import time_ms

DISABLED_WARNING = (
    "posthog disabled: Missing required API key. "
    "Set POSTHOG_API_KEY environment variable or pass api_key to PosthogLogHandler."
)
#: Mastra's own words (``apiKey`` is its option's name), kept byte for byte in compat mode.
MASTRA_DISABLED_WARNING = (
    "posthog disabled: Missing required API key. "
    "Set POSTHOG_API_KEY environment variable or pass apiKey in config."
)
#: Records waiting for the listener before the oldest are dropped (counted).  Big
#: enough for a burst of 20,000 spans logged as fast as one thread can (the listener
#: drains meanwhile); small enough that the queue, whose records can't be measured
#: in bytes on the caller's thread, stays a fraction of the memory the bytes-bounded
#: buffer allows.
DEFAULT_MAX_QUEUE_SIZE = 32_768
#: Encoded events the sender holds (queued, in flight, or waiting out an outage).
DEFAULT_MAX_BUFFER_EVENTS = 100_000
DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024
#: What happens when the caller's queue or the listener's buffer is full:
#: drop the oldest (counted), spill the oldest buffered events, or make the
#: caller wait up to ``block_timeout`` for room (then drop the oldest).
OVERFLOW_POLICIES = ("drop_oldest", "spill", "block")
#: Why a record logged once close() began is dropped (counted).
CLOSED_DROP = "records logged after close() are dropped"

_log = diagnostics.log

#: The nested fields copied on the caller's thread, so later mutation can't leak in:
#: a span's, then a feedback's (metadata) and a PostHog event's (properties).
_SPAN_FIELDS = ("attributes", "metadata", "input", "output")
_OTHER_FIELDS = ("metadata", "properties")

_live_handlers: weakref.WeakSet[PosthogLogHandler] = weakref.WeakSet()


def _close_live_handlers() -> None:
    """A worker process ends without ``logging.shutdown()``: close as it would have."""
    for handler in list(_live_handlers):
        handler.close()


_worker_exit = WorkerExit(on_exit=_close_live_handlers)
_server_exit = ServerExit(on_exit=_close_live_handlers)


class InterpreterExit:
    """Whether this process's exit has begun, for flush() and close() at exit to
    share one ``shutdown_timeout`` (see :meth:`PosthogLogHandler.close`).

    :meth:`begin` is an atexit hook registered when this module is imported,
    after ``logging`` registered ``logging.shutdown``: atexit runs hooks last
    registered first, so it runs before ``logging.shutdown()``.  A worker ended
    by ``os._exit()`` runs no atexit hook; there only close() is called
    (:mod:`.processes`), which takes ``shutdown_timeout`` on its own.
    """

    def __init__(self) -> None:
        self.begun = False

    def begin(self) -> None:
        self.begun = True


_interpreter_exit = InterpreterExit()
atexit.register(_interpreter_exit.begin)


def _after_fork_in_child() -> None:
    _interpreter_exit.begun = False  # a child forked by an exit hook has its own exit
    for handler in list(_live_handlers):
        handler._reset_after_fork()
    _worker_exit.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PosthogLogHandler(logging.Handler):
    """A ``logging.Handler`` that sends span and feedback records to PostHog.

    Keyword names and defaults follow ``reference/api.md``; ``flush_at`` and
    ``flush_interval`` default to 20 and 10.0 s, or 10 and 2.0 s with
    ``serverless=True`` unless given.  ``privacy_mode``, ``serverless`` and
    ``sample_rate`` left unset come from ``$POSTHOG_PRIVACY_MODE``,
    ``$POSTHOG_SERVERLESS`` and ``$POSTHOG_AI_TRACE_SAMPLE_RATE``.  ``mask`` and
    ``before_send`` are callables or their dotted names (``"pkg.mod:func"``),
    run on the listener thread (see :mod:`.redaction`).  See the README for the
    extra knobs.
    """

    def __init__(
        self,
        api_key: str | None = None,
        host: str | None = None,
        flush_at: int | None = None,
        flush_interval: float | None = None,
        serverless: bool | None = None,
        default_distinct_id: str | None = None,
        privacy_mode: bool | None = None,
        mastra_compat: bool = False,
        spill_dir: str | os.PathLike[str] | None = None,
        level: int | str = logging.NOTSET,
        *,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_buffer_events: int = DEFAULT_MAX_BUFFER_EVENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_attempts: int = 8,
        retry_base_delay: float = 0.25,
        retry_max_delay: float = 8.0,
        flush_timeout: float = 5.0,
        shutdown_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        gzip: bool = True,
        capture_logs: bool = False,
        sample_rate: float | None = None,
        mask: Mask | str | None = None,
        before_send: BeforeSend | str | None = None,
        capture_exceptions: bool = False,
        redact_media: bool = True,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
    ) -> None:
        serverless = flag_setting(serverless, "serverless", SERVERLESS_ENV)
        privacy_mode = flag_setting(privacy_mode, "privacy_mode", PRIVACY_MODE_ENV)
        self.sample_rate = sample_rate_setting(sample_rate)
        self.mask: Mask | None = hook_setting(mask, "mask")
        self.before_send: BeforeSend | None = hook_setting(before_send, "before_send")
        for name, flag in (
            ("mastra_compat", mastra_compat),
            ("gzip", gzip),
            ("capture_logs", capture_logs),
            ("capture_exceptions", capture_exceptions),
            ("redact_media", redact_media),
        ):
            require_bool(name, flag)
        self.flush_at = positive_int("flush_at", flush_at, 10 if serverless else 20)
        self.flush_interval = positive_seconds(
            "flush_interval", flush_interval, 2.0 if serverless else 10.0
        )
        self.max_queue_size = positive_int("max_queue_size", max_queue_size, 0)
        self.max_buffer_events = positive_int("max_buffer_events", max_buffer_events, 0)
        self.max_buffer_bytes = positive_int("max_buffer_bytes", max_buffer_bytes, 0)
        self.flush_timeout = positive_seconds("flush_timeout", flush_timeout, 0)
        self.shutdown_timeout = positive_seconds("shutdown_timeout", shutdown_timeout, 0)
        request_timeout = positive_seconds("request_timeout", request_timeout, 0)
        self.max_in_flight = positive_int("max_in_flight", max_in_flight, 0)
        optional_str("default_distinct_id", default_distinct_id)
        self.serverless = serverless
        self.capture_logs = capture_logs
        self.privacy_mode = privacy_mode
        self.mastra_compat = mastra_compat
        self.spill_dir = None if spill_dir is None else os.fspath(spill_dir)
        self.fsync_interval = positive_seconds("fsync_interval", fsync_interval, 0)
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if overflow == "spill" and self.spill_dir is None:
            raise ValueError("overflow='spill' needs spill_dir")
        self.overflow = overflow
        self.block_timeout = positive_seconds("block_timeout", block_timeout, 0)
        self.max_event_bytes = positive_int("max_event_bytes", max_event_bytes, 0)
        self.retry = RetryPolicy(
            max_attempts=positive_int("max_attempts", max_attempts, 0),
            base_delay=positive_seconds("retry_base_delay", retry_base_delay, 0),
            max_delay=positive_seconds("retry_max_delay", retry_max_delay, 0),
        )
        self.host = resolve_host(host)
        api_key = resolve_api_key(api_key)
        self.disabled = api_key is None
        self.options = MappingOptions(
            mastra_compat=mastra_compat,
            privacy_mode=privacy_mode,
            default_distinct_id=default_distinct_id,
            capture_exceptions=capture_exceptions,
            redact_media=redact_media,
        )
        # Only now, with every argument valid: Handler.__init__ registers the handler
        # for logging.shutdown(), which must never meet a half-built one.
        super().__init__(level)
        self._stats = Stats()
        self._ignored = 0
        self._received = 0
        self._closed = False
        #: Set once the first close() finished: later callers wait for it (see close()).
        self._shutdown_done = threading.Event()
        self._closing_thread: int | None = None
        #: Set when close() empties the queue for the last time: later puts clean up after.
        self._queue_closed = False
        #: At exit: when this handler's shutdown_timeout ends (see _deadline).
        self._exit_deadline: float | None = None
        self._lifecycle_lock = threading.RLock()  # re-entrant: a signal handler may log
        self._starting = False
        self._transport = Transport(
            api_key or "",
            self.host,
            gzip=gzip,
            timeout=request_timeout,
            connections=self.max_in_flight,
        )
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pipeline = self._new_pipeline()
        self._listener: EventListener | None = None
        if self.disabled:
            _log.warning(MASTRA_DISABLED_WARNING if mastra_compat else DISABLED_WARNING)
        else:
            _live_handlers.add(self)
            _server_exit.arm()  # a server may end this process by SIGTERM
            self._pipeline.sender.resume_backlog()  # what earlier processes left in spill_dir

    #: Where records go instead of the queue, or None (the default): while set, every
    #: record a handler would queue is handed to it, with the handler, on the thread that
    #: logged it, whatever the handler's state (no API key included): nothing is queued,
    #: no thread starts, nothing is sent.  The one seam for tests:
    #: :func:`posthog_logging.testing.capture` sets it and maps the records itself.
    record_sink: ClassVar[Callable[[PosthogLogHandler, RecordItem], None] | None] = None

    #: Whether this class overrides ``filter()``: ``handle()`` then always calls it,
    #: as ``Handler.handle`` does, even with no filter added.
    _own_filter = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_filter = cls.filter is not logging.Filterer.filter

    def __repr__(self) -> str:
        state = "disabled" if self.disabled else self.host
        return f"<{type(self).__name__} {state} ({logging.getLevelName(self.level)})>"

    # ---------------------------------------------------------------- caller
    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit without taking the handler lock: ``emit`` is thread-safe.

        Returns what ``Handler.handle`` returns on 3.12+ (the record emitted, or a
        false value) on every version; with no filter set, ``filter()`` is not called
        (unless a subclass overrides it).
        """
        if self.filters or self._own_filter:
            result = self.filter(record)
            if not result:
                return result
            if isinstance(result, logging.LogRecord):
                record = result
        self.emit(record)
        return record

    def emit(self, record: logging.LogRecord) -> None:
        """Queue a snapshot of the record's span, feedback or PostHog event; ignore the rest.

        Every span of the application passes here on its thread, so the span path
        is kept lean: one call for the record's fields, one for the snapshot, and
        the queued item is a plain tuple (see :data:`~.pipeline.RecordItem`).
        """
        if (self.disabled and PosthogLogHandler.record_sink is None) or library_thread.active:
            return  # never feed on records made while handling records
        try:
            fields = payload_fields(record)
            span = fields.get(SPAN_ATTR)
            item: RecordItem | None
            if span is not None:
                item = (
                    SPAN_ITEM,
                    _snapshot(span, _SPAN_FIELDS),
                    fields.get(SPAN_EVENT_ATTR),
                    record.created,
                )
            else:
                item = self._other_item(record, fields)
                if item is None:
                    self._ignored += 1
                    return
            sink = PosthogLogHandler.record_sink
            if sink is not None:
                sink(self, item)
                return
            if self._closed:
                self._count_drop("closed", CLOSED_DROP)
                return
            if self._listener is None:
                self._start_listener()
            self._received += 1
            event_queue = self._queue
            if event_queue.qsize() >= self.max_queue_size and not self._make_room():
                return
            event_queue.put(item)
            if self._queue_closed:  # close() emptied the queue for the last time before the put
                self._drop_queued()
        except Exception:  # never raise into the caller's thread
            self._count_drop("emit_error", "a record's span or feedback could not be read")

    def _other_item(
        self, record: logging.LogRecord, fields: Mapping[str, Any]
    ) -> RecordItem | None:
        """The item for a feedback, PostHog event or captured log record; None for the rest."""
        feedback = fields.get(FEEDBACK_ATTR)
        if feedback is not None and not is_own_logger(record.name):
            return (FEEDBACK_ITEM, _snapshot(feedback, _OTHER_FIELDS), None, record.created)
        posthog_event = fields.get(POSTHOG_EVENT_ATTR)
        if posthog_event is not None:
            return (
                POSTHOG_EVENT_ITEM,
                _snapshot(posthog_event, _OTHER_FIELDS),
                None,
                record.created,
            )
        if self.capture_logs and record.levelno >= logging.WARNING:
            log_span = log_event_span(record)
            if log_span is not None:
                return (SPAN_ITEM, log_span, None, record.created)
        return None

    def _make_room(self) -> bool:
        """The queue is full: wait for room (overflow='block') or drop the oldest record.

        False when close() began while this caller waited: its record is dropped
        (counted), since the listener may have stopped reading.
        """
        if self.overflow == "block" and self._wait_for_room():
            if not self._closed:
                return True
            self._count_drop("closed", CLOSED_DROP)
            return False
        # The oldest record goes.  Older requests (a flush() or close() waiting) and the
        # listener's sentinel are not records: they go back, at the tail.
        kept: list[Any] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if is_record(item):
                self._count_drop("queue_full", "the queue is full; dropping the oldest records")
                break
            kept.append(item)
        for item in kept:
            self._queue.put(item)
        return True

    def _wait_for_room(self) -> bool:
        """overflow='block': wait up to ``block_timeout`` for the listener to catch up
        (or for close() to begin)."""
        deadline = time.monotonic() + self.block_timeout
        while self._queue.qsize() >= self.max_queue_size and not self._closed:
            if time.monotonic() >= deadline or library_thread.active:
                return False
            time.sleep(0.001)
        return True

    def _count_drop(self, reason: str, message: str, count: int = 1) -> None:
        if self._stats.drop(reason, count) == count:
            diagnostics.keep_enabled()
            _log.warning("posthog-logging: %s (counted in stats()['dropped'][%r])", message, reason)

    def _start_listener(self) -> None:
        with self._lifecycle_lock:
            # A signal handler that logs may re-enter here on this thread, between any
            # two bytecodes: _starting makes it leave the start to the call it
            # interrupted (whose listener reads its record too), and the listener is
            # checked only once _starting is set, so a start that a re-entrant call
            # completed just before is seen.
            if self._starting:
                return
            self._starting = True
            try:
                if self._listener is None and not self._closed:
                    diagnostics.keep_enabled()
                    _worker_exit.arm()  # this process may end without logging.shutdown()
                    _server_exit.arm()  # (a worker forked after the first arm resets SIGTERM)
                    listener = EventListener(self._queue, self._pipeline)
                    listener.start()
                    self._listener = listener
            except RuntimeError:
                pass  # at interpreter exit new threads cannot start; close() drains inline
            finally:
                self._starting = False

    # ------------------------------------------------------------- lifecycle
    def flush(self) -> None:
        """Block until everything logged before this call was sent (or spilled, or
        dropped), for at most ``flush_timeout`` and never longer than ``shutdown_timeout``."""
        if self.disabled or self._closed:
            return
        deadline = self._deadline(min(self.flush_timeout, self.shutdown_timeout))
        self._finish(FlushRequest(deadline), deadline)

    def close(self) -> None:
        """Abort open spans, deliver everything within ``shutdown_timeout``, stop.

        At exit, ``logging.shutdown()`` calls ``flush()`` and then ``close()``:
        both together take at most ``shutdown_timeout`` (see :meth:`_deadline`).
        Only the first call shuts down; a later or concurrent one
        (``logging.shutdown()`` at exit while another thread closes) waits for it,
        up to its own ``shutdown_timeout``, unless it comes from the closing
        thread itself or from one of the library's threads (a log record of the
        shutdown), which the shutdown may be waiting on.
        """
        with self._lifecycle_lock:
            first_close = not self._closed
            self._closed = True
            if first_close:
                self._closing_thread = threading.get_ident()
        if first_close:
            try:
                if not self.disabled:
                    self._shut_down(self._deadline(self.shutdown_timeout))
            finally:
                self._shutdown_done.set()
        elif self._closing_thread != threading.get_ident() and not library_thread.active:
            self._shutdown_done.wait(
                max(0.0, self._deadline(self.shutdown_timeout) - time.monotonic())
            )
        _live_handlers.discard(self)
        super().close()

    def _deadline(self, seconds: float) -> float:
        """``seconds`` from now; at exit, never past this handler's shutdown deadline,
        which its first flush() or close() at exit sets ``shutdown_timeout`` ahead.

        So the flush() and close() of ``logging.shutdown()`` at exit share one
        ``shutdown_timeout``, and the atexit hooks that ran before (joining a
        ``multiprocessing`` child, say) take none of it.  Outside exit, flush()
        and close() keep their own budgets, whatever another thread did.
        """
        now = time.monotonic()
        if not _interpreter_exit.begun:
            return now + seconds
        if self._exit_deadline is None:
            self._exit_deadline = now + self.shutdown_timeout
        return min(now + seconds, self._exit_deadline)

    def _shut_down(self, deadline: float) -> None:
        """Deliver what was logged before close() by ``deadline``; keep the rest.

        The shutdown order, in one place:
        """
        pipeline = self._pipeline
        request = CloseRequest(deadline, now_ms=time_ms(time.time()) or 0)
        # 1. The listener maps every record queued before close() (later ones are
        #    refused: _closed is set), aborts the spans still open (§1.2), and stops
        #    (EventListener).  Without a listener (or on the listener's own thread),
        #    this thread does that work.
        self._finish(request, deadline)
        # 2. If the listener missed the deadline, this thread aborts the open spans;
        #    the records the listener never reached are dropped unmapped (counted):
        #    mapping them here would overrun the deadline.
        if not request.done.is_set():
            unmapped = pipeline.take_over(self._drain_queue(), request.now_ms)
            if unmapped:
                self._count_drop(
                    "shutdown_deadline",
                    "the listener was still mapping at the shutdown deadline; "
                    "records it never reached are dropped",
                    unmapped,
                )
        # 3. The senders deliver everything buffered, in batches however small,
        #    until the deadline; this thread sends when no sender thread could start,
        #    or when it is one of the library's own (close() from a log record of theirs).
        pipeline.sender.drain(deadline)
        # 4. Whatever is still undelivered (in flight included) is spilled, or dropped
        #    and counted; the sender threads stop, the kept-alive connections close.
        pipeline.sender.abandon()
        self._transport.close()
        # 5. Records still queued (logged as close() began) are dropped, counted; a
        #    caller that queues one after this drops it itself (see emit).  A
        #    listener still running (late, or the thread that called close()) is
        #    handed its sentinel, so it stops.
        self._queue_closed = True
        self._drop_queued()
        # 6. One warning sums up what was lost or spilled.
        self._report_losses()

    def _finish(self, request: FlushRequest, deadline: float) -> None:
        """Have ``request`` carried out by the listener, waiting up to ``deadline``."""
        listener = self._listener
        thread = listener.thread if listener is not None else None
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._queue.put(request)
            request.done.wait(max(0.0, deadline - time.monotonic()))
            return
        self._drain_inline(request)

    def _drain_inline(self, request: FlushRequest) -> None:
        """Do the listener's work on this thread (no listener could run)."""
        with self._lifecycle_lock:
            was_active, library_thread.active = library_thread.active, True
            try:
                for item in self._drain_queue():
                    if item is not None:
                        self._pipeline.process(item)
                self._pipeline.process(request)
            finally:
                library_thread.active = was_active

    def _drain_queue(self) -> list[Any]:
        """Everything still queued (records, requests, the sentinel), oldest first."""
        items: list[Any] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _drop_queued(self) -> None:
        """After the shutdown: whatever is still queued will never be read.

        Records are counted as dropped, flush() callers released; a listener
        still running (late: the drain may have taken its CloseRequest) gets a
        sentinel, so it stops.
        """
        dropped = release_unread(self._drain_queue())
        if dropped:
            self._count_drop("closed", CLOSED_DROP, dropped)
        listener = self._listener
        thread = listener.thread if listener is not None else None
        if listener is not None and thread is not None and thread.is_alive():
            listener.enqueue_sentinel()

    def _report_losses(self) -> None:
        """One WARNING at close when events were dropped or spilled."""
        counts = self._stats.snapshot()
        dropped, spilled = counts["dropped"], counts["spilled"]
        if spilled:
            _log.warning(
                "posthog-logging: closed with dropped events %s and %d events spilled to %s",
                dropped,
                spilled,
                self.spill_dir,
            )
        elif dropped:
            _log.warning("posthog-logging: closed with dropped events %s", dropped)

    def stats(self) -> dict[str, Any]:
        """Counters (``stats.COUNTERS``, received, ignored, dropped by reason), the
        backlog (records ``queued``, ``buffered_events``, ``buffered_bytes``) and state
        (``listener_alive``, ``disabled``)."""
        counts = self._stats.snapshot()
        counts["ignored"] = self._ignored
        counts["received"] = self._received
        counts["queued"] = self._queue.qsize()
        # Mapped and not yet settled (queued, in flight, waiting for a retry): the
        # buffer's fill against max_buffer_events / max_buffer_bytes.
        buffer = self._pipeline.buffer
        counts["buffered_events"] = buffer.held_events
        counts["buffered_bytes"] = buffer.bytes
        listener = self._listener
        thread = listener.thread if listener is not None else None
        counts["listener_alive"] = bool(thread is not None and thread.is_alive())
        counts["disabled"] = self.disabled
        return counts

    def _new_pipeline(self) -> EventPipeline:
        sender = Sender(
            HttpExporter(self._transport, self._stats),
            self._stats,
            EventBuffer(self.max_buffer_events, self.max_buffer_bytes),
            flush_at=self.flush_at,
            max_in_flight=self.max_in_flight,
            retry=self.retry,
            journal=None
            if self.spill_dir is None
            else Journal(self.spill_dir, fsync_interval=self.fsync_interval),
            spill_on_overflow=self.overflow == "spill",
        )
        # One event never takes more than half the buffer: a larger one is shrunk,
        # not buffered at the cost of everything else held.  From a 16 MiB bound up,
        # that leaves PostHog's limit (max_event_bytes) the only one that cuts.
        max_event_bytes = min(self.max_event_bytes, self.max_buffer_bytes // 2)
        encoder = EventEncoder(self.options, self._stats, max_event_bytes=max_event_bytes)
        outgoing = OutgoingEvents(
            self._stats,
            sampler=sampler_for(self.sample_rate),
            mask=self.mask,
            before_send=self.before_send,
        )
        return EventPipeline(encoder, sender, flush_interval=self.flush_interval, outgoing=outgoing)

    def _reset_after_fork(self) -> None:
        """In a forked child: empty buffer, fresh state, a listener and senders of
        its own later, and fresh connections.

        The parent's buffered events stay the parent's to send.
        """
        self._queue = queue.SimpleQueue()
        self._lifecycle_lock = threading.RLock()
        self._starting = False
        # A close() another thread of the parent was running is not this process's to wait for.
        self._shutdown_done = threading.Event()
        if self._closed:
            self._shutdown_done.set()
        self._closing_thread = None
        self._stats = Stats()
        self._ignored = 0
        self._received = 0
        self._exit_deadline = None
        self._transport.reset_after_fork()
        self._pipeline = self._new_pipeline()
        self._listener = None


# The handler never consumes the library's own warnings: never let it be their only reader.
_log.addFilter(diagnostics.LastResortFilter(blind=PosthogLogHandler))


def _snapshot(payload: Any, nested: tuple[str, ...]) -> Any:
    """A copy the caller can no longer change: top level plus the ``nested`` fields."""
    if type(payload) is dict:
        copy = payload.copy()
        for key in nested:
            value = copy.get(key)
            if type(value) is dict or type(value) is list:
                copy[key] = value.copy()
        return copy
    if isinstance(payload, SupportsSpanDict):
        return payload.to_span_dict()
    if isinstance(payload, Mapping):
        return dict(payload)
    return payload  # not a mapping: the listener rejects it, counted
