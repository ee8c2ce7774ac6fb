"""Asserting on the events this library sends, in tests: :func:`capture` and ``posthog_events``.

While :func:`capture` is active, every :class:`~posthog_logging.PosthogLogHandler`
(made before or during it, by ``dictConfig`` or by hand, with an API key or
without) hands its records to an in-memory sink instead of its queue, through
the handler's one seam, :attr:`PosthogLogHandler.record_sink`.  The sink maps
each record on the thread that logged it, with that handler's own options
(compat and privacy mode, sampling, ``mask``, ``before_send``), and keeps each
event as the JSON PostHog would receive.  No thread starts, no socket opens,
nothing is sent, and the events are there as soon as the logging call returns.

The pytest fixture ``posthog_events`` (:mod:`posthog_logging.pytest_plugin`)
is ``capture()`` for one test::

    def test_agent(posthog_events):
        run_agent("What's the weather in Paris?")
        assert len(posthog_events.generations(model="gpt-4o-mini")) == 2, posthog_events.tree()

The scripted faults of the capture server, for tests that need real HTTP, are
importable from here too (:class:`ScriptedResponse`, :data:`DROPPED`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, overload

from .devserver.events import group_by_trace, properties
from .devserver.faults import DROPPED, ScriptedResponse
from .devserver.tree import render_trace_tree
from .handler import PosthogLogHandler
from .pipeline import EventEncoder, RecordItem
from .redaction import OutgoingEvents
from .sampling import sampler_for
from .sender import library_thread
from .stats import Stats

__all__ = ["DROPPED", "CapturedEvents", "ScriptedResponse", "capture"]

Event = dict[str, Any]
#: The events of one span: what ``spans()`` returns.
SPAN_EVENTS = ("$ai_trace", "$ai_span", "$ai_generation", "$ai_embedding")


class CapturedEvents(Sequence[Event]):
    """The events captured so far, in the order they were built, with finders.

    Each event is a dict as PostHog receives it (``event``, ``distinct_id``,
    ``properties``, ``timestamp``, ``uuid``).  Records the mapping rejected are
    not events: they are counted in :attr:`dropped`, by reason, as
    ``handler.stats()["dropped"]`` would count them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        #: Records and events dropped on the way (``invalid_span``, ``mask_error``, ...).
        self.dropped: Counter[str] = Counter()

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        with self._lock:
            return self._events[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __repr__(self) -> str:
        return f"<CapturedEvents: {len(self)} events in {len(self.traces())} traces>"

    @property
    def events(self) -> list[Event]:
        """Every event, in the order built."""
        with self._lock:
            return list(self._events)

    def of_kind(self, event: str) -> list[Event]:
        """The events named ``event`` (``"$ai_feedback"``, ``"$ai_metric"``, ...)."""
        return [captured for captured in self.events if captured.get("event") == event]

    def generations(self, model: str | None = None) -> list[Event]:
        """The ``$ai_generation`` events, only those of ``model`` when given."""
        return [
            event
            for event in self.of_kind("$ai_generation")
            if model is None or properties(event).get("$ai_model") == model
        ]

    def spans(self, name: str | None = None) -> list[Event]:
        """The events of spans of every kind (trace, span, generation, embedding),
        only those named ``name`` (``$ai_span_name``) when given."""
        return [
            event
            for event in self.events
            if event.get("event") in SPAN_EVENTS
            and (name is None or properties(event).get("$ai_span_name") == name)
        ]

    def traces(self) -> dict[str, list[Event]]:
        """The events by ``$ai_trace_id``, traces in order of their first event."""
        return group_by_trace(self.events)  # type: ignore[return-value]

    def trace(self, trace_id: str | None = None) -> list[Event]:
        """One trace's events: ``trace_id``'s, or the only trace captured.

        Fails with the trees of what was captured when there is no such trace,
        or when no id is given and there is not exactly one trace.
        """
        traces = self.traces()
        if trace_id is None and len(traces) == 1:
            return next(iter(traces.values()))
        if trace_id is not None and trace_id in traces:
            return traces[trace_id]
        wanted = f"trace {trace_id}" if trace_id is not None else "exactly one trace"
        raise AssertionError(f"expected {wanted}; captured {len(traces)}:\n{self.tree()}")

    def tree(self) -> str:
        """Every captured trace as an indented tree, for an assertion message."""
        trees = [render_trace_tree(events) for events in group_by_trace(self.events).values()]
        return "\n\n".join(trees) if trees else "(no events captured)"

    def clear(self) -> None:
        """Forget the events and drop counts captured so far."""
        with self._lock:
            self._events.clear()
            self.dropped.clear()

    def _extend(self, events: list[Event], dropped: Counter[str]) -> None:
        with self._lock:
            self._events.extend(events)
            self.dropped.update(dropped)


class _HandlerMapping:
    """One handler's mapping, as its listener would run it: options, trace state,
    sampling and hooks of that handler."""

    def __init__(self, handler: PosthogLogHandler) -> None:
        self.stats = Stats()
        max_event_bytes = min(handler.max_event_bytes, handler.max_buffer_bytes // 2)
        self.encoder = EventEncoder(handler.options, self.stats, max_event_bytes=max_event_bytes)
        self.outgoing = OutgoingEvents(
            self.stats,
            sampler=sampler_for(handler.sample_rate),
            mask=handler.mask,
            before_send=handler.before_send,
        )

    def events(self, item: RecordItem) -> tuple[list[Event], Counter[str]]:
        """The events of one record as PostHog would receive them, and what was dropped."""
        before = Counter(self.stats.snapshot()["dropped"])
        built = self.encoder.map(item) or []
        kept = self.outgoing.filter(built) if built else []
        encoded = [json.loads(self.encoder.encode(event)) for event in kept]
        dropped = Counter(self.stats.snapshot()["dropped"])
        dropped.subtract(before)
        return encoded, +dropped


class _RecordSink:
    """The handlers' :attr:`~PosthogLogHandler.record_sink` while capturing."""

    def __init__(self, captured: CapturedEvents) -> None:
        self.captured = captured
        self._lock = threading.Lock()
        self._mappings: weakref.WeakKeyDictionary[PosthogLogHandler, _HandlerMapping] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, handler: PosthogLogHandler, item: RecordItem) -> None:
        with self._lock:  # one record at a time: the trace state is not thread-safe
            # The mapping's own log records (a rejected span) must not come back here.
            was_active, library_thread.active = library_thread.active, True
            try:
                mapping = self._mappings.get(handler)
                if mapping is None:
                    mapping = self._mappings[handler] = _HandlerMapping(handler)
                events, dropped = mapping.events(item)
            finally:
                library_thread.active = was_active
            self.captured._extend(events, dropped)


@contextlib.contextmanager
def capture() -> Iterator[CapturedEvents]:
    """Capture every handler's events in memory until the block ends (see the module).

    Nested captures each see the records logged while they are the innermost;
    the outer one resumes when the inner one ends.
    """
    captured = CapturedEvents()
    previous = PosthogLogHandler.record_sink
    PosthogLogHandler.record_sink = _RecordSink(captured)
    try:
        yield captured
    finally:
        PosthogLogHandler.record_sink = previous
