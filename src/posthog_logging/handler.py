"""``PosthogLogHandler``: span records in, PostHog LLM-analytics events out.

The caller's thread does as little as the standard library's ``QueueHandler``:
it takes a shallow snapshot of the span and puts it on a queue.  Mapping,
serialisation and HTTP all happen on the handler's own ``QueueListener``
thread, which the handler starts itself (lazily, and again in a forked child)
because ``dictConfig`` on 3.12+ builds but never starts listeners.

Shutdown is owned here too.  ``logging.shutdown()`` (run at exit) calls
``flush()`` and ``close()`` with the handler's lock held; the listener never
takes that lock, so waiting for it there is safe.  If the listener could not
be started (new threads may fail at interpreter exit), the caller's thread
drains the queue itself.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Mapping
from logging.handlers import QueueListener
from typing import Any

from posthog import request as posthog_request

from . import diagnostics
from .contract import (
    CURRENT_SPAN,
    DIAGNOSTICS_LOGGER,
    FEEDBACK_ATTR,
    SPAN_ATTR,
    SPAN_EVENT_ATTR,
    SupportsSpanDict,
)
from .mapping import EventMapper, MappingOptions, SpanRejected
from .pipeline import (
    FEEDBACK_ITEM,
    SPAN_ITEM,
    CloseRequest,
    EventBuffer,
    EventPipeline,
    FlushRequest,
    RecordItem,
    Stats,
)
from .processes import WorkerExit
from .spill import SpillWriter
from .transport import MAX_EVENT_BYTES, RetryPolicy, Transport
from .values import time_ms

DEFAULT_HOST = "https://us.i.posthog.com"
DISABLED_WARNING = (
    "posthog disabled: Missing required API key. "
    "Set POSTHOG_API_KEY environment variable or pass apiKey in config."
)
#: Records waiting for the listener before the oldest are dropped (counted).  Big
#: enough for a burst of 20,000 spans logged as fast as one thread can (the listener
#: drains meanwhile); small enough that the queue, whose records can't be measured
#: in bytes on the caller's thread, stays a fraction of the memory the bytes-bounded
#: buffer allows.
DEFAULT_MAX_QUEUE_SIZE = 32_768
#: Encoded events the listener buffers (sending, or waiting out an outage).
DEFAULT_MAX_BUFFER_EVENTS = 100_000
DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024
#: What happens when the caller's queue or the listener's buffer is full:
#: drop the oldest (counted), spill the oldest buffered events, or make the
#: caller wait up to ``block_timeout`` for room (then drop the oldest).
OVERFLOW_POLICIES = ("drop_oldest", "spill", "block")

_log = diagnostics.log
#: Loggers whose records this handler never consumes (its own and its transport's).
_OWN_LOGGERS = frozenset({DIAGNOSTICS_LOGGER, "posthog", "urllib3", "requests"})


def _is_own_logger(name: str) -> bool:
    """True for the library's diagnostics and its transport's loggers (and their children)."""
    return any(name == own or name.startswith(own + ".") for own in _OWN_LOGGERS)


#: Nested span fields copied on the caller's thread, so later mutation can't leak in.
_SNAPSHOT_FIELDS = ("attributes", "metadata", "input", "output")


class EventListener(QueueListener):
    """A ``QueueListener`` whose waits double as the pipeline's timers."""

    def __init__(self, event_queue: queue.SimpleQueue[Any], pipeline: EventPipeline) -> None:
        super().__init__(event_queue)
        self.event_queue = event_queue
        self.pipeline = pipeline
        self._backlog = 0

    def dequeue(self, block: bool) -> Any:
        _pipeline_thread.active = True  # this thread's own log records are never consumed
        while True:
            try:
                return self.event_queue.get(block, self.pipeline.seconds_until_due())
            except queue.Empty:
                self.pipeline.on_timer()

    def handle(self, record: Any) -> None:
        self.pipeline.process(record)
        # While the application is logging (the queue grows), hand the GIL back
        # after every record: its threads come first, and the listener catches
        # up when they pause (bench/: a burst costs 0.9x a QueueHandler instead
        # of 1.3x).  When nothing new arrives, run at full speed.
        backlog = self.event_queue.qsize()
        if backlog > self._backlog:
            time.sleep(0)
        self._backlog = backlog

    @property
    def thread(self) -> threading.Thread | None:
        thread: threading.Thread | None = getattr(self, "_thread", None)
        return thread

    def stop_within(self, timeout: float) -> bool:
        """Ask the thread to finish and wait at most ``timeout``; True if it did."""
        thread = self.thread
        self.enqueue_sentinel()
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True


class _PipelineThread(threading.local):
    """Set while a thread does pipeline work (the listener, or an inline drain)."""

    active = False


_pipeline_thread = _PipelineThread()


_live_handlers: weakref.WeakSet[PosthogLogHandler] = weakref.WeakSet()


def _close_live_handlers() -> None:
    """A worker process ends without ``logging.shutdown()``: close as it would have."""
    for handler in list(_live_handlers):
        handler.close()


_worker_exit = WorkerExit(on_exit=_close_live_handlers)


def _after_fork_in_child() -> None:
    for handler in list(_live_handlers):
        handler._reset_after_fork()
    _worker_exit.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PosthogLogHandler(logging.Handler):
    """A ``logging.Handler`` that sends span and feedback records to PostHog.

    Keyword names and defaults follow ``reference/api.md``; ``flush_at`` and
    ``flush_interval`` default to 20 and 10.0 s, or 10 and 2.0 s with
    ``serverless=True`` unless given.  See the README for the extra knobs.
    """

    def __init__(
        self,
        api_key: str | None = None,
        host: str | None = None,
        flush_at: int | None = None,
        flush_interval: float | None = None,
        serverless: bool = False,
        default_distinct_id: str | None = None,
        privacy_mode: bool = False,
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
        gzip: bool = True,
        capture_logs: bool = False,
    ) -> None:
        for name, flag in (
            ("serverless", serverless),
            ("privacy_mode", privacy_mode),
            ("mastra_compat", mastra_compat),
            ("gzip", gzip),
            ("capture_logs", capture_logs),
        ):
            _require_bool(name, flag)
        self.flush_at = _positive_int("flush_at", flush_at, 10 if serverless else 20)
        self.flush_interval = _positive_seconds(
            "flush_interval", flush_interval, 2.0 if serverless else 10.0
        )
        self.max_queue_size = _positive_int("max_queue_size", max_queue_size, 0)
        self.max_buffer_events = _positive_int("max_buffer_events", max_buffer_events, 0)
        self.max_buffer_bytes = _positive_int("max_buffer_bytes", max_buffer_bytes, 0)
        self.flush_timeout = _positive_seconds("flush_timeout", flush_timeout, 0)
        self.shutdown_timeout = _positive_seconds("shutdown_timeout", shutdown_timeout, 0)
        request_timeout = _positive_seconds("request_timeout", request_timeout, 0)
        _optional_str("default_distinct_id", default_distinct_id)
        self.serverless = serverless
        self.capture_logs = capture_logs
        self.privacy_mode = privacy_mode
        self.mastra_compat = mastra_compat
        self.spill_dir = None if spill_dir is None else os.fspath(spill_dir)
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if overflow == "spill" and self.spill_dir is None:
            raise ValueError("overflow='spill' needs spill_dir")
        self.overflow = overflow
        self.block_timeout = _positive_seconds("block_timeout", block_timeout, 0)
        self.max_event_bytes = _positive_int("max_event_bytes", max_event_bytes, 0)
        self.retry = RetryPolicy(
            max_attempts=_positive_int("max_attempts", max_attempts, 0),
            base_delay=_positive_seconds("retry_base_delay", retry_base_delay, 0),
            max_delay=_positive_seconds("retry_max_delay", retry_max_delay, 0),
        )
        self.host = resolve_host(host)
        api_key = resolve_api_key(api_key)
        self.disabled = api_key is None
        self.options = MappingOptions(
            mastra_compat=mastra_compat,
            privacy_mode=privacy_mode,
            default_distinct_id=default_distinct_id,
        )
        # Only now, with every argument valid: Handler.__init__ registers the handler
        # for logging.shutdown(), which must never meet a half-built one.
        super().__init__(level)
        self._stats = Stats()
        self._ignored = 0
        self._received = 0
        self._closed = False
        #: Re-entrant, like the stdlib handlers' locks: a signal handler that logs may
        #: run on a thread that holds it (see _start_listener).
        self._lifecycle_lock = threading.RLock()
        self._starting = False
        self._transport = Transport(api_key or "", self.host, gzip=gzip, timeout=request_timeout)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pipeline = self._new_pipeline()
        self._listener: EventListener | None = None
        if self.disabled:
            _log.warning(DISABLED_WARNING)
        else:
            _live_handlers.add(self)

    def __repr__(self) -> str:
        state = "disabled" if self.disabled else self.host
        return f"<{type(self).__name__} {state} ({logging.getLevelName(self.level)})>"

    # ---------------------------------------------------------------- caller
    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit without taking the handler lock: ``emit`` is thread-safe."""
        result = self.filter(record)
        if result:
            self.emit(result if isinstance(result, logging.LogRecord) else record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Queue a snapshot of the record's span or feedback; everything else is ignored."""
        if self.disabled or _pipeline_thread.active:
            return  # never feed on records made while handling records
        try:
            attributes = record.__dict__
            span = attributes.get(SPAN_ATTR)
            if span is not None:
                item: RecordItem = (
                    SPAN_ITEM,
                    _snapshot(span),
                    attributes.get(SPAN_EVENT_ATTR),
                    record.created,
                )
            else:
                feedback = attributes.get(FEEDBACK_ATTR)
                if feedback is not None and not _is_own_logger(record.name):
                    item = (FEEDBACK_ITEM, _snapshot(feedback), None, record.created)
                elif self.capture_logs and record.levelno >= logging.WARNING:
                    log_span = _log_event_span(record)
                    if log_span is None:
                        self._ignored += 1
                        return
                    item = (SPAN_ITEM, log_span, None, record.created)
                else:
                    self._ignored += 1
                    return
            self._enqueue(item)
        except Exception:  # never raise into the caller's thread
            self._count_drop("emit_error", "a record's span or feedback could not be read")

    def _enqueue(self, item: RecordItem) -> None:
        if self._closed:
            self._count_drop("closed", "records logged after close() are dropped")
            return
        if self._listener is None:
            self._start_listener()
        self._received += 1
        event_queue = self._queue
        if event_queue.qsize() >= self.max_queue_size:
            if self.overflow == "block" and self._wait_for_room():
                event_queue.put(item)
                return
            try:
                event_queue.get_nowait()
            except queue.Empty:
                pass
            else:
                self._count_drop("queue_full", "the queue is full; dropping the oldest records")
        event_queue.put(item)

    def _wait_for_room(self) -> bool:
        """overflow='block': wait up to ``block_timeout`` for the listener to catch up."""
        deadline = time.monotonic() + self.block_timeout
        while self._queue.qsize() >= self.max_queue_size:
            if time.monotonic() >= deadline or _pipeline_thread.active:
                return False
            time.sleep(0.001)
        return True

    def _count_drop(self, reason: str, message: str) -> None:
        if self._stats.drop(reason) == 1:
            diagnostics.keep_enabled()
            _log.warning("posthog-logging: %s (counted in stats()['dropped'][%r])", message, reason)

    def _start_listener(self) -> None:
        with self._lifecycle_lock:
            if self._listener is not None or self._closed or self._starting:
                # _starting: a signal handler that logs interrupted this thread while
                # it starts the listener; that listener will read this record too.
                return
            self._starting = True
            try:
                diagnostics.keep_enabled()
                _worker_exit.arm()  # this process may end without logging.shutdown()
                listener = EventListener(self._queue, self._pipeline)
                listener.start()
            except RuntimeError:
                # At interpreter exit new threads cannot start; close() drains inline.
                return
            finally:
                self._starting = False
            self._listener = listener

    # ------------------------------------------------------------- lifecycle
    def flush(self) -> None:
        """Block until everything logged before this call was sent (or timed out)."""
        if self.disabled or self._closed:
            return
        self._finish(FlushRequest(time.monotonic() + self.flush_timeout), self.flush_timeout)

    def close(self) -> None:
        """Abort open spans, deliver everything within ``shutdown_timeout``, stop."""
        with self._lifecycle_lock:
            first_close = not self._closed
            self._closed = True
        if first_close and not self.disabled:
            timeout = self.shutdown_timeout
            deadline = time.monotonic() + timeout
            request = CloseRequest(deadline, now_ms=time_ms(time.time()) or 0)
            self._finish(request, timeout)
            listener = self._listener
            remaining = max(0.1, deadline - time.monotonic())
            if listener is not None and not listener.stop_within(remaining):
                # Stuck in a request to a hanging server: keep what it holds.
                self._pipeline.rescue(self._drain_queue(), request.now_ms)
                listener.enqueue_sentinel()  # drained with the rest: the thread may stop later
                _log.warning("posthog-logging: listener still busy at the shutdown deadline")
            self._report_losses()
        _live_handlers.discard(self)
        super().close()

    def _finish(self, request: FlushRequest, timeout: float) -> None:
        listener = self._listener
        thread = listener.thread if listener is not None else None
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._queue.put(request)
            request.done.wait(timeout)
            return
        self._drain_inline(request)

    def _drain_inline(self, request: FlushRequest) -> None:
        """Do the listener's work on this thread (no listener could run)."""
        with self._lifecycle_lock:
            _pipeline_thread.active = True
            try:
                for item in self._drain_queue():
                    if item is not None:
                        self._pipeline.process(item)
                self._pipeline.process(request)
            finally:
                _pipeline_thread.active = False

    def _drain_queue(self) -> list[Any]:
        """Everything still queued (records, requests, the sentinel), oldest first."""
        items: list[Any] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _report_losses(self) -> None:
        """One WARNING at close when events were dropped or spilled."""
        counts = self._stats.snapshot()
        dropped, spilled = counts["dropped"], counts["spilled"]
        if dropped or spilled:
            _log.warning(
                "posthog-logging: closed with dropped events %s and %d events spilled to %s",
                dropped,
                spilled,
                self.spill_dir,
            )

    def stats(self) -> dict[str, Any]:
        """Counters (received, ignored, mapped, sent, retried, dropped by reason)."""
        counts = self._stats.snapshot()
        counts["ignored"] = self._ignored
        counts["received"] = self._received
        counts["queued"] = self._queue.qsize()
        listener = self._listener
        thread = listener.thread if listener is not None else None
        counts["listener_alive"] = bool(thread is not None and thread.is_alive())
        counts["disabled"] = self.disabled
        return counts

    def _new_pipeline(self) -> EventPipeline:
        mapper = EventMapper(self.options, on_reject=self._reject_while_aborting)
        return EventPipeline(
            mapper,
            self._transport,
            self._stats,
            EventBuffer(self.max_buffer_events, self.max_buffer_bytes),
            flush_at=self.flush_at,
            flush_interval=self.flush_interval,
            spiller=None if self.spill_dir is None else SpillWriter(self.spill_dir),
            spill_on_overflow=self.overflow == "spill",
            max_event_bytes=self.max_event_bytes,
            retry=self.retry,
        )

    def _reject_while_aborting(self, rejected: SpanRejected) -> None:
        self._pipeline.reject(rejected)

    def _reset_after_fork(self) -> None:
        """In a forked child: empty buffer, fresh state, a listener of its own later.

        The parent's buffered events stay the parent's to send.
        """
        self._queue = queue.SimpleQueue()
        self._lifecycle_lock = threading.RLock()
        self._starting = False
        self._stats = Stats()
        self._ignored = 0
        self._received = 0
        self._pipeline = self._new_pipeline()
        self._listener = None
        reset_sessions = getattr(posthog_request, "reset_sessions", None)
        if reset_sessions is not None:
            reset_sessions()  # the parent's pooled connections are not ours to use


# The handler never consumes the library's own warnings: never let it be their only reader.
_log.addFilter(diagnostics.LastResortFilter(blind=PosthogLogHandler))


def _log_event_span(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """capture_logs: a warning logged inside an active span, as an event span under it."""
    active = CURRENT_SPAN.get()
    if active is None or _is_own_logger(record.name):
        return None
    message = record.getMessage()
    attributes: dict[str, Any] = {"level": record.levelname, "logger": record.name}
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        attributes["exception"] = f"{type(error).__name__}: {error}"
    event = dict(
        active.event_span_dict(f"log {record.levelname}: {message[:80]}", message, attributes)
    )
    if record.levelno >= logging.ERROR:
        event["errorInfo"] = {"message": message, "category": "USER"}
    return event


def _snapshot(payload: Any) -> Any:
    """A copy the caller can no longer change: top level plus the nested fields."""
    if type(payload) is dict:
        copy = payload.copy()
        for key in _SNAPSHOT_FIELDS:
            value = copy.get(key)
            if type(value) is dict or type(value) is list:
                copy[key] = value.copy()
        return copy
    if isinstance(payload, SupportsSpanDict):
        return payload.to_span_dict()
    if isinstance(payload, Mapping):
        return dict(payload)
    return payload  # not a mapping: the listener rejects it, counted


def resolve_api_key(api_key: Any) -> str | None:
    """The API key from the argument, else ``$POSTHOG_API_KEY``; None when neither."""
    if api_key is None:
        api_key = os.environ.get("POSTHOG_API_KEY")
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError(f"api_key must be a string, not {type(api_key).__name__}")
    return (api_key.strip() or None) if api_key else None


def resolve_host(host: Any) -> str:
    """The host from the argument, else ``$POSTHOG_HOST``, else the US cloud."""
    if host is None:
        host = os.environ.get("POSTHOG_HOST") or None
    if host is None:
        _log.info(
            "posthog-logging: no host given, using the US cloud %s "
            "(EU projects set host or POSTHOG_HOST to https://eu.i.posthog.com)",
            DEFAULT_HOST,
        )
        return DEFAULT_HOST
    if not isinstance(host, str):
        raise TypeError(f"host must be a string, not {type(host).__name__}")
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"host must be an http:// or https:// URL, got {host!r}")
    return host.rstrip("/")


def _require_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")


def _optional_str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")


def _positive_int(name: str, value: Any, default: int) -> int:
    if value is None and default:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _positive_seconds(name: str, value: Any, default: float) -> float:
    if value is None and default:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    return float(value)
