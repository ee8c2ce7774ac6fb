"""Span and feedback records → PostHog LLM-analytics events (``docs/mapping-rules.md``).

:class:`EventMapper` is the only stateful piece: it keeps the §1.2 trace state
and dispatches each record to the builders of the other modules, which mirror
the sections of those rules (``spans`` §1.3-§1.10, ``messages`` §1.11, ``layers`` §1.12,
``feedback`` §1.13; ``wrapped`` finishes ready PostHog events).  It keeps no
lock itself: the pipeline holds its own lock around every call, because the
closing thread aborts the open spans when the listener misses the shutdown
deadline (``EventPipeline.take_over``).  ``logs`` turns warnings logged inside a
span into event spans (``capture_logs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..contract import SpanEvent
from ..values import is_truthy
from .envelope import Event, MappingOptions, RecordRejected
from .feedback import FeedbackEventBuilder
from .layers import DroppedProperties
from .spans import NO_CONTEXT, SpanContext, SpanEventBuilder, SpanFacts
from .state import SHUTDOWN_ERROR, TRACE_CAP_ERROR, OpenSpan, TraceRegistry, TraceState
from .wrapped import WrappedEventBuilder

__all__ = ["DroppedProperties", "Event", "EventMapper", "MappingOptions", "RecordRejected"]


class EventMapper:
    """Turns records into events, remembering per-trace state between them."""

    def __init__(
        self,
        options: MappingOptions,
        on_reject: Callable[[RecordRejected], None],
        registry: TraceRegistry | None = None,
        on_dropped_property: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        #: Told of spans dropped while handling another record (aborts).
        self.on_reject = on_reject
        self.traces = registry if registry is not None else TraceRegistry()
        #: Told of each passthrough property default mode drops (Part 2 (l)).
        dropped = on_dropped_property or DroppedProperties()
        self._spans = SpanEventBuilder(options, dropped)
        self._feedback = FeedbackEventBuilder(options, dropped)
        self._wrapped = WrappedEventBuilder(options)

    def map_span(self, span: Any, span_event: SpanEvent, now_ms: int) -> list[Event]:
        """§1.2: the events one span record produces (often none, for a start)."""
        facts = SpanFacts(span, mastra_compat=self.options.mastra_compat)
        if facts.is_event:
            state = self.traces.get(facts.trace_id)
            events = self._spans.build(facts, self._context(facts, state), now_ms)
            if state is not None:
                self.traces.touched(state)
            return events
        if span_event is SpanEvent.STARTED:
            return self._start(facts, now_ms)
        if span_event is SpanEvent.ENDED:
            return self._end(facts, now_ms)
        return []  # span_updated: ignored completely

    def map_feedback(self, feedback: Any, now_ms: int) -> Event:
        return self._feedback.build(feedback, now_ms)

    def map_posthog_event(self, payload: Any, now_ms: int) -> Event:
        """A ready PostHog AI event (``posthog_event`` record), checked and finished;
        one without a distinct id takes its trace's user when the trace is known."""
        return self._wrapped.build(payload, now_ms, self._trace_user)

    def _trace_user(self, trace_id: str) -> str | None:
        state = self.traces.get(trace_id)
        return state.user if state is not None else None

    def abort_open_spans(self, now_ms: int) -> list[Event]:
        """§1.2 ``close()``: every open span is sent with the SHUTDOWN error."""
        return self._abort(self.traces.drain_open(), SHUTDOWN_ERROR, now_ms)

    def _start(self, facts: SpanFacts, now_ms: int) -> list[Event]:
        state, evicted = self.traces.get_or_create(facts.trace_id)
        state.snapshots[facts.span_id] = facts
        state.open_spans[facts.span_id] = None
        if state.user is None:
            state.user = facts.user_id()
        self.traces.touched(state)
        return self._abort(evicted, TRACE_CAP_ERROR, now_ms)

    def _end(self, facts: SpanFacts, now_ms: int) -> list[Event]:
        state = self.traces.get(facts.trace_id)
        if state is None:
            return self._spans.build(facts, NO_CONTEXT, now_ms)
        state.open_spans.pop(facts.span_id, None)
        self.traces.touched(state)
        snapshot = state.snapshots.get(facts.span_id)
        if (
            snapshot is not None
            and not is_truthy(facts.span.get("input"))
            and is_truthy(snapshot.span.get("input"))
        ):
            facts = SpanFacts(
                {**facts.span, "input": snapshot.span["input"]},
                mastra_compat=self.options.mastra_compat,
            )
        return self._spans.build(facts, self._context(facts, state), now_ms)

    def _context(self, facts: SpanFacts, state: TraceState | None) -> SpanContext:
        if state is None:
            return NO_CONTEXT
        parent = state.snapshots.get(facts.parent_id) if facts.parent_id else None
        parent_is_root = parent is not None and parent.is_root
        return SpanContext(trace_user=state.user, parent_is_root=parent_is_root)

    def _abort(
        self, open_spans: list[OpenSpan], error: Mapping[str, str], now_ms: int
    ) -> list[Event]:
        """Send open spans as if ended, with ``error`` as their errorInfo."""
        events: list[Event] = []
        for state, snapshot in open_spans:
            facts = SpanFacts(
                {**snapshot.span, "errorInfo": dict(error)},
                mastra_compat=self.options.mastra_compat,
            )
            try:
                events.extend(self._spans.build(facts, self._context(facts, state), now_ms))
            except RecordRejected as rejected:
                self.on_reject(rejected)
        return events
