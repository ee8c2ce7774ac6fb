"""``PosthogLogHandler``: span records in, PostHog LLM-analytics events out.

This module is the ``logging.Handler`` facade over the parts it composes:

* :class:`~.settings.Settings`: every argument, resolved and checked once;
* :mod:`.callerqueue`: on the caller's thread, each record's span is
  snapshotted (as cheaply as the standard library's ``QueueHandler`` prepares a
  record) and queued, bounded;
* :class:`~.lifecycle.Lifecycle`: the listener's start, the deadlines, the
  numbered shutdown and the reset in a forked child.

Mapping happens on the pipeline's ``EventListener`` thread and HTTP on the
sender's threads (``pipeline``, ``sender``); ``docs/architecture.md`` follows
one record from ``logger.info`` to the POST.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar

from . import lifecycle as process_hooks
from .callerqueue import CLOSED_DROP, SPAN_FIELDS, other_item, snapshot
from .congestion import RetryPolicy
from .contract import SPAN_ATTR, SPAN_EVENT_ATTR
from .diagnostics import log as _log
from .encoding import MAX_EVENT_BYTES
from .journal import DEFAULT_FSYNC_INTERVAL
from .lifecycle import Lifecycle
from .pipeline import SPAN_ITEM, EventPipeline, RecordItem
from .records import payload_fields
from .redaction import BeforeSend, Mask
from .sender import DEFAULT_MAX_IN_FLIGHT, library_thread
from .settings import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_BUFFER_EVENTS,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    Settings,
)
from .transport import Transport

DISABLED_WARNING = (
    "posthog disabled: Missing required API key. "
    "Set POSTHOG_API_KEY environment variable or pass api_key to PosthogLogHandler."
)
#: Mastra's own words (``apiKey`` is its option's name), kept byte for byte in compat mode.
MASTRA_DISABLED_WARNING = (
    "posthog disabled: Missing required API key. "
    "Set POSTHOG_API_KEY environment variable or pass apiKey in config."
)


class PosthogLogHandler(logging.Handler):
    """A ``logging.Handler`` that sends span and feedback records to PostHog.

    Keyword names and defaults follow ``docs/api.md``; ``flush_at`` and
    ``flush_interval`` default to 20 and 10.0 s, or 10 and 2.0 s with
    ``serverless=True`` unless given.  ``privacy_mode``, ``serverless`` and
    ``sample_rate`` left unset come from ``$POSTHOG_PRIVACY_MODE``,
    ``$POSTHOG_SERVERLESS`` and ``$POSTHOG_AI_TRACE_SAMPLE_RATE``.  ``mask`` and
    ``before_send`` are callables or their dotted names (``"pkg.mod:func"``),
    run on the listener thread (see :mod:`.redaction`).  See the README for the
    extra knobs.  The resolved values are :attr:`settings`.
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
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_attempts: int = RetryPolicy.max_attempts,
        retry_base_delay: float = RetryPolicy.base_delay,
        retry_max_delay: float = RetryPolicy.max_delay,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
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
        settings = Settings.resolve(
            api_key,
            host,
            flush_at,
            flush_interval,
            serverless,
            default_distinct_id,
            privacy_mode,
            mastra_compat,
            spill_dir,
            max_queue_size=max_queue_size,
            max_buffer_events=max_buffer_events,
            max_buffer_bytes=max_buffer_bytes,
            overflow=overflow,
            block_timeout=block_timeout,
            max_event_bytes=max_event_bytes,
            max_attempts=max_attempts,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            flush_timeout=flush_timeout,
            shutdown_timeout=shutdown_timeout,
            request_timeout=request_timeout,
            max_in_flight=max_in_flight,
            gzip=gzip,
            capture_logs=capture_logs,
            sample_rate=sample_rate,
            mask=mask,
            before_send=before_send,
            capture_exceptions=capture_exceptions,
            redact_media=redact_media,
            fsync_interval=fsync_interval,
        )
        # Only now, with every argument valid: Handler.__init__ registers the handler
        # for logging.shutdown(), which must never meet a half-built one.
        super().__init__(level)
        self.settings = settings
        # No __getattr__ reaching into the settings: a class that defines one has every
        # attribute read of the handler take the slow path (bench/: caller cost).
        #: Read on every record: plain attributes, not looked up through the settings.
        self.disabled = settings.disabled
        self._capture_logs = settings.capture_logs
        transport = Transport(
            settings.api_key or "",
            settings.host,
            gzip=settings.gzip,
            timeout=settings.request_timeout,
            connections=settings.max_in_flight,
        )
        self._lifecycle = Lifecycle(settings, transport)
        self._records = self._lifecycle.records
        if self.disabled:
            _log.warning(MASTRA_DISABLED_WARNING if mastra_compat else DISABLED_WARNING)
        else:
            process_hooks.register(self, self._lifecycle)
            # What earlier processes left in spill_dir.
            self._lifecycle.pipeline.sender.resume_backlog()

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
        state = "disabled" if self.disabled else self.settings.host
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
        the queued item is a plain tuple (see :data:`~.pipeline.RecordItem`); the
        record queue's put is inlined (:mod:`.callerqueue`).
        """
        if (self.disabled and PosthogLogHandler.record_sink is None) or library_thread.active:
            return  # never feed on records made while handling records
        records = self._records
        try:
            fields = payload_fields(record)
            span = fields.get(SPAN_ATTR)
            item: RecordItem | None
            if span is not None:
                item = (
                    SPAN_ITEM,
                    snapshot(span, SPAN_FIELDS),
                    fields.get(SPAN_EVENT_ATTR),
                    record.created,
                )
            else:
                item = other_item(record, fields, self._capture_logs)
                if item is None:
                    records.ignored += 1
                    return
            sink = PosthogLogHandler.record_sink
            if sink is not None:
                sink(self, item)
                return
            if records.closed:
                records.count_drop("closed", CLOSED_DROP)
                return
            lifecycle = self._lifecycle
            if lifecycle.listener is None:
                lifecycle.start_listener()
            records.received += 1
            event_queue = records.queue
            if event_queue.qsize() >= records.max_size and not records.make_room():
                return
            event_queue.put(item)
            if records.sealed:  # close() emptied the queue for the last time before the put
                lifecycle.drop_queued()
        except Exception:  # never raise into the caller's thread
            records.count_drop("emit_error", "a record's span or feedback could not be read")

    # ------------------------------------------------------------- lifecycle
    def flush(self) -> None:
        """Block until everything logged before this call was sent (or spilled, or
        dropped), for at most ``flush_timeout`` and never longer than ``shutdown_timeout``."""
        if self.disabled or self._records.closed:
            return
        process_hooks.begin_logging_shutdown()  # then closed: close() follows at once
        if not self._records.closed:
            self._lifecycle.flush()

    def close(self) -> None:
        """Abort open spans, deliver everything within ``shutdown_timeout``, stop.

        ``logging.shutdown()`` (at exit, or called by the application) calls
        ``flush()`` and then ``close()`` of each handler in turn: ours begin
        together and share one ``shutdown_timeout`` each, so the whole call takes
        at most the largest (:func:`.lifecycle.begin_logging_shutdown`).  Only
        the first call shuts down; a later or concurrent one waits for it (see
        :meth:`.Lifecycle.close`, where the shutdown's steps are numbered).
        """
        process_hooks.begin_logging_shutdown()
        self._lifecycle.close()
        process_hooks.unregister(self)
        super().close()

    def stats(self) -> dict[str, Any]:
        """Counters (``stats.COUNTERS``, received, ignored, dropped by reason), the
        backlog (records ``queued``, ``buffered_events``, ``buffered_bytes``) and state
        (``listener_alive``, ``disabled``)."""
        lifecycle, records = self._lifecycle, self._records
        counts = lifecycle.stats.snapshot()
        counts["ignored"] = records.ignored
        counts["received"] = records.received
        counts["queued"] = records.queue.qsize()
        # Mapped and not yet settled (queued, in flight, waiting for a retry): the
        # buffer's fill against max_buffer_events / max_buffer_bytes.
        buffer = lifecycle.pipeline.buffer
        counts["buffered_events"] = buffer.held_events
        counts["buffered_bytes"] = buffer.bytes
        counts["listener_alive"] = lifecycle.listener_alive()
        counts["disabled"] = self.disabled
        return counts

    @property
    def _pipeline(self) -> EventPipeline:
        """The pipeline of this process (tests read its buffer)."""
        return self._lifecycle.pipeline


process_hooks.install_process_hooks(PosthogLogHandler)
