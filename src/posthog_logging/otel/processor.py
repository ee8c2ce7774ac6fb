"""``LoggingSpanProcessor``: finished OTel GenAI spans become span records on a logger.

It sits beside whatever exporters the application already has
(``provider.add_span_processor(LoggingSpanProcessor())``) and never touches
the global tracer provider.  From then on an OTel-instrumented model call is
one more span record for the handler: same mapping, batching, spill, replay
and stats as ``pl.generation``.

Which spans become records:

* every *AI span* (:func:`~.conventions.is_ai_span`: the name or an attribute
  key starts with ``gen_ai.``, ``llm.``, ``ai.`` or ``traceloop.``, the filter
  PostHog's own OTel exporters use, or it has an OpenInference span kind),
  except a Logfire request span whose streamed reply is logged as a span of
  its own (:func:`~.logfire.is_streamed_request`);
* the *ancestors* of an AI span that started in this process, as plain spans,
  so PostHog shows the model call inside the work that caused it (an agent
  step, an HTTP request) instead of under a parent it never received.  The
  trace's root becomes ``$ai_trace``.  This works because a parent ends after
  its children; a parent that ended first (fire-and-forget work) is not sent;
* nothing else: other spans are left alone.

The root of a trace with AI spans is announced with a ``span_started`` record
(as ``pl.span`` roots are) when its first AI descendant ends, so that
descendants' ``$ai_parent_id`` is the trace and a root left open at exit is
sent as aborted by the handler's ``close()``.

An OTel trace that begins inside a ``pl.span`` (instrumented code called
within the tracing API) joins that span's trace: its root is logged as a
child of the ``pl.span`` and every span of it carries the ``pl`` trace id, so
the model call nests where it happened instead of starting a trace of its own.

Privacy mode is decided here too, not only by the handler: a record made under
privacy mode holds no input, output or attribute that may hold text
(:mod:`.privacy`), so nothing that reads the records (a JSON-lines file, a
later ``posthog-logging send``) ever sees the content either.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ..config import PRIVACY_MODE_ENV, flag_setting, require_bool
from ..contract import (
    CURRENT_SPAN,
    DEFAULT_SPAN_LOGGER,
    DIAGNOSTICS_LOGGER,
    SPAN_ATTR,
    SPAN_EVENT_ATTR,
    SpanEvent,
)
from . import logfire
from .conventions import is_ai_span, span_dict

_log = logging.getLogger(DIAGNOSTICS_LOGGER)

#: Live spans remembered for the ancestor walk.  Only spans that never end stay
#: longer than their lifetime; beyond this many the oldest are forgotten.
MAX_TRACKED_SPANS = 10_000

_SpanKey = tuple[int, int]  # (trace id, span id)
_Host = tuple[str, str]  # (trace id, span id) of a pl.span


@dataclass
class _Tracked:
    """A span that has started and not ended."""

    span: Span
    parent: _SpanKey | None
    #: An AI span has ended below it: send it when it ends.
    needed: bool = False
    #: Its ``span_started`` record has been logged (roots only).
    announced: bool = False


class LoggingSpanProcessor(SpanProcessor):
    """An OpenTelemetry ``SpanProcessor`` that logs GenAI spans as span records.

    ``logger`` is a logger or a logger name (default ``"posthog_logging.spans"``,
    the tracing API's).  Records are logged at INFO on the thread that ends the
    span; the handler does the rest off that thread.  Nothing raises into the
    OTel SDK: a span that cannot be converted is counted and reported.

    Privacy mode holds when any handler the records reach has ``privacy_mode``
    set, when ``$POSTHOG_PRIVACY_MODE`` is true, or when ``privacy_mode=True``
    is given here (for records that reach no ``PosthogLogHandler``, such as a
    JSON-lines file sent later).
    """

    def __init__(
        self, logger: logging.Logger | str | None = None, *, privacy_mode: bool = False
    ) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or DEFAULT_SPAN_LOGGER)
        if not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a Logger or a logger name, not {logger!r}")
        require_bool("privacy_mode", privacy_mode)
        self.logger = logger
        self.privacy_mode = privacy_mode or flag_setting(None, "privacy_mode", PRIVACY_MODE_ENV)
        # Reentrant: a signal handler may end a span while this thread holds it.
        self._lock = threading.RLock()
        self._live: dict[_SpanKey, _Tracked] = {}
        #: OTel traces begun inside a pl.span: OTel trace id -> that span's ids.
        self._hosts: dict[int, _Host] = {}
        self._counts: Counter[str] = Counter()
        self._shut_down = False
        if hasattr(os, "register_at_fork"):
            # A fork while another thread held the lock would leave the child's copy
            # locked for good; the child gets a fresh one (as OTel's BatchProcessor does).
            reinit = weakref.WeakMethod(self._at_fork_reinit)
            os.register_at_fork(after_in_child=lambda: (method := reinit()) and method())

    def stats(self) -> dict[str, int]:
        """Spans ``logged`` (AI spans and needed ancestors), ``skipped`` (left alone),
        ``failed`` (could not be converted) and ``untracked`` (forgotten while open)."""
        with self._lock:
            return {key: self._counts[key] for key in ("logged", "skipped", "failed", "untracked")}

    # ------------------------------------------------------------ OTel hooks
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            context = span.get_span_context()
            parent = span.parent
            parent_key = None if parent is None else (parent.trace_id, parent.span_id)
            host = CURRENT_SPAN.get() if parent is None else None
            with self._lock:
                if self._shut_down:
                    return
                if parent is not None and parent.is_remote and parent_key not in self._live:
                    # A remote parent that is live here was carried over (Logfire's
                    # streamed-response log is parented so); any other lives elsewhere.
                    parent_key = None
                self._live[(context.trace_id, context.span_id)] = _Tracked(span, parent_key)
                if host is not None:
                    self._hosts[context.trace_id] = (host.trace_id, host.span_id)
                while len(self._live) > MAX_TRACKED_SPANS:
                    del self._live[next(iter(self._live))]
                    self._counts["untracked"] += 1
                while len(self._hosts) > MAX_TRACKED_SPANS:
                    del self._hosts[next(iter(self._hosts))]
        except Exception:
            self._failed("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._end(span)
        except Exception:
            self._failed("on_end", span)

    def shutdown(self) -> None:
        """Stop logging (later spans are ignored); the handler is closed by ``logging``."""
        with self._lock:
            self._shut_down = True
            self._live.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the handlers the records reach, so ``provider.force_flush()`` delivers."""
        for handler in self._handlers():
            handler.flush()
        return True

    def private(self) -> bool:
        """Whether records are made under privacy mode (see the class docstring)."""
        return self.privacy_mode or any(
            getattr(handler, "privacy_mode", False) is True for handler in self._handlers()
        )

    # -------------------------------------------------------------- internals
    def _at_fork_reinit(self) -> None:
        self._lock = threading.RLock()

    def _handlers(self) -> Iterator[logging.Handler]:
        """The handlers a record logged on ``self.logger`` reaches."""
        logger: logging.Logger | None = self.logger
        while logger is not None:
            yield from logger.handlers
            logger = logger.parent if logger.propagate else None

    def _end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None:
            return
        root: _Tracked | None = None
        with self._lock:
            if self._shut_down:
                return
            tracked = self._live.pop((context.trace_id, context.span_id), None)
            host = self._hosts.get(context.trace_id)
            if span.parent is None:
                self._hosts.pop(context.trace_id, None)  # the OTel trace is over
            if self._is_sent_ai_span(span):
                root = self._mark_ancestors(tracked.parent if tracked is not None else None)
            elif tracked is None or not tracked.needed:
                self._counts["skipped"] += 1
                return
            self._counts["logged"] += 1
        # Logging happens outside the lock (handlers may write files).  Two threads
        # may both announce a root: a repeated start replaces the first (spec §1.2),
        # and either way the start precedes each child's end.  A trace hosted by a
        # pl.span has its root there, announced by the tracing API.
        if root is not None and host is None and not root.announced:
            self._log(root.span, SpanEvent.STARTED, None)
            root.announced = True
        self._log(span, SpanEvent.ENDED, host)

    @staticmethod
    def _is_sent_ai_span(span: ReadableSpan) -> bool:
        """An AI span, unless another span of the same call carries it (Logfire's streaming)."""
        attributes = span.attributes or {}
        return is_ai_span(span.name, attributes) and not logfire.is_streamed_request(
            attributes, span.status
        )

    def _mark_ancestors(self, key: _SpanKey | None) -> _Tracked | None:
        """Mark the live ancestors as needed; return the trace's root if it is live."""
        tracked = None
        while key is not None:
            tracked = self._live.get(key)
            if tracked is None:
                return None
            tracked.needed = True
            key = tracked.parent
        return tracked if tracked is not None and tracked.span.parent is None else None

    def _log(self, span: ReadableSpan, span_event: SpanEvent, host: _Host | None) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        start_only = span_event is SpanEvent.STARTED
        record_span = span_dict(span, start_only=start_only, host=host, private=self.private())
        record = self.logger.makeRecord(
            self.logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s",
            (span_event.value, span.name),
            None,
            extra={SPAN_ATTR: record_span, SPAN_EVENT_ATTR: span_event.value},
        )
        self.logger.handle(record)

    def _failed(self, hook: str, span: ReadableSpan | None = None) -> None:
        """Count and report a span this processor could not handle (never raises)."""
        try:
            with self._lock:
                self._counts["failed"] += 1
                first = self._counts["failed"] == 1
            name = span.name if span is not None else "?"
            _log.log(
                logging.WARNING if first else logging.DEBUG,
                "LoggingSpanProcessor.%s dropped OTel span %r",
                hook,
                name,
                exc_info=True,
            )
        except Exception:
            pass  # the OTel SDK's thread must never see an error
