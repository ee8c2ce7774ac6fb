"""``docs/mapping-rules.md`` §1.2 per-trace state: snapshots, open spans, user, clean-up.

Mastra's exporter remembers, per trace, the span as it was when it started
(so an end without ``input`` can borrow it and a child can tell whether its
parent is the root), which spans are still open (so shutdown can abort them),
and the first ``userId`` seen.  The memory is bounded the same way: a trace
with no open span is forgotten 30 s after its last record, at most 100 traces
wait for that, and at most 500 traces are kept at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from .spans import SpanFacts

#: errorInfo given to spans still open when the handler closes.
SHUTDOWN_ERROR: Mapping[str, str] = {
    "message": "Observability is shutting down.",
    "id": "SHUTDOWN",
    "domain": "MASTRA_OBSERVABILITY",
    "category": "SYSTEM",
}
#: errorInfo given to the open spans of a trace evicted by the trace cap.
TRACE_CAP_ERROR: Mapping[str, str] = {
    "message": "Trace killed due to memory cap enforcement.",
    "id": "TRACE_CAP_EXCEEDED",
    "domain": "MASTRA_OBSERVABILITY",
    "category": "SYSTEM",
}

CLEANUP_DELAY_SECONDS = 30.0
MAX_PENDING_CLEANUP = 100
MAX_TRACES = 500


@dataclass
class TraceState:
    """What is remembered about one trace."""

    trace_id: str
    snapshots: dict[str, SpanFacts] = field(default_factory=dict)
    #: Open span ids in order of first start (a dict used as an ordered set).
    open_spans: dict[str, None] = field(default_factory=dict)
    user: str | None = None

    def open_snapshots(self) -> Iterator[SpanFacts]:
        """Start snapshots of the spans still open, in order of first start."""
        return (self.snapshots[span_id] for span_id in self.open_spans)


#: An open span handed back for aborting: its trace's state and its start snapshot.
OpenSpan = tuple[TraceState, SpanFacts]


class TraceRegistry:
    """All live :class:`TraceState` objects, bounded in number and in time.

    Eviction returns the open span snapshots it abandons, so the caller can
    send them as aborted spans; the registry itself never builds events.
    """

    def __init__(
        self,
        *,
        max_traces: int = MAX_TRACES,
        max_pending_cleanup: int = MAX_PENDING_CLEANUP,
        cleanup_delay: float = CLEANUP_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._traces: dict[str, TraceState] = {}
        self._cleanup_at: dict[str, float] = {}
        self._max_traces = max_traces
        self._max_pending_cleanup = max_pending_cleanup
        self._cleanup_delay = cleanup_delay
        self._clock = clock

    def __len__(self) -> int:
        return len(self._traces)

    def get(self, trace_id: str) -> TraceState | None:
        return self._traces.get(trace_id)

    def get_or_create(self, trace_id: str) -> tuple[TraceState, list[OpenSpan]]:
        """The trace's state, and the open spans of the traces evicted to make room."""
        state = self._traces.get(trace_id)
        if state is not None:
            return state, []
        evicted: list[OpenSpan] = []
        while len(self._traces) >= self._max_traces:
            oldest = self._forget(next(iter(self._traces)))
            evicted.extend((oldest, snapshot) for snapshot in oldest.open_snapshots())
        state = self._traces[trace_id] = TraceState(trace_id)
        return state, evicted

    def touched(self, state: TraceState) -> None:
        """Record that a record of this trace was handled: (re)arm or cancel clean-up."""
        self._cleanup_at.pop(state.trace_id, None)
        if state.open_spans or state.trace_id not in self._traces:
            return
        self._cleanup_at[state.trace_id] = self._clock() + self._cleanup_delay
        while len(self._cleanup_at) > self._max_pending_cleanup:
            self._forget(next(iter(self._cleanup_at)))

    def expire(self) -> None:
        """Forget every trace whose clean-up time has come."""
        now = self._clock()
        while self._cleanup_at:
            trace_id, deadline = next(iter(self._cleanup_at.items()))
            if deadline > now:
                return
            self._forget(trace_id)

    def next_expiry(self) -> float | None:
        """Monotonic time of the next clean-up, for the listener's wait timeout."""
        return next(iter(self._cleanup_at.values()), None)

    def drain_open(self) -> list[OpenSpan]:
        """Every open span, traces in order of first appearance; marks them closed."""
        drained = [
            (state, snapshot)
            for state in self._traces.values()
            for snapshot in state.open_snapshots()
        ]
        for state in self._traces.values():
            state.open_spans.clear()
        return drained

    def _forget(self, trace_id: str) -> TraceState:
        self._cleanup_at.pop(trace_id, None)
        return self._traces.pop(trace_id)
