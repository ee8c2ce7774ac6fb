"""Trace trees: one trace's events nested by parent, for the terminal and the viewer.

:func:`trace_rows` lays out one trace (parents from ``$ai_parent_id``,
siblings in order of start); :func:`render_trace_tree` draws that layout as
text, and :class:`TracePrinter` prints it as the dev server receives traces.
The web viewer draws the same rows as a waterfall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .capture import ReceivedRequest
from .events import (
    error_message,
    group_by_trace,
    latency_seconds,
    node_id,
    properties,
    start_ms,
    trace_id_of,
)
from .store import TraceStore


@dataclass(frozen=True)
class TreeRow:
    """One event placed in its trace's tree."""

    event: Mapping[str, Any]
    depth: int
    #: For each ancestor level and then this row: whether it is the last of its siblings.
    last: tuple[bool, ...]


def _parent_key(event: Mapping[str, Any], known: set[str], top: str | None) -> str | None:
    """The node an event hangs under: its ``$ai_parent_id`` if that is in the trace, else ``top``.

    Feedback belongs to the trace as a whole, so it always goes to ``top``.
    """
    parent = properties(event).get("$ai_parent_id")
    if parent is None or str(parent) not in known or event.get("event") == "$ai_feedback":
        return top
    return str(parent)


def trace_rows(events: Sequence[Mapping[str, Any]]) -> list[TreeRow]:
    """One trace's events in tree order (parents from ``$ai_parent_id``).

    Siblings come in order of start (``timestamp`` is when a span ended, so the
    start is that minus ``$ai_latency``), as a trace viewer lists them.  Events
    whose parents form a cycle come after the tree: every event is always
    placed exactly once.
    """
    if not events:
        return []
    trace_id = trace_id_of(events[0])
    root = next((event for event in events if event.get("event") == "$ai_trace"), None)
    known = {node for event in events if (node := node_id(event)) is not None}
    top = trace_id if root is not None else None
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for event in events:
        if event is not root:
            children.setdefault(_parent_key(event, known, top), []).append(event)
    for siblings in children.values():
        siblings.sort(key=lambda event: start_ms(event) or 0.0)

    rows: list[TreeRow] = []
    placed: set[int] = set()  # id() of each placed event

    def walk(event: Mapping[str, Any], last: tuple[bool, ...]) -> None:
        placed.add(id(event))
        rows.append(TreeRow(event, len(last) - 1, last))
        node = node_id(event)
        kids = [kid for kid in children.get(node, []) if id(kid) not in placed] if node else []
        for index, kid in enumerate(kids):
            walk(kid, (*last, index == len(kids) - 1))

    tops = [root] if root is not None else children.get(None, [])
    for index, event in enumerate(tops):
        walk(event, (index == len(tops) - 1,))
    for event in events:
        if id(event) not in placed:
            walk(event, (True,))
    return rows


def describe(event: Mapping[str, Any]) -> str:
    """One line about an event: kind, name, model, latency, tokens, error."""
    props = properties(event)
    kind = str(event.get("event", "?")).removeprefix("$ai_")
    parts = [kind]
    if kind == "feedback":
        parts.append(repr(props.get("$ai_feedback_text")))
    else:
        parts.append(str(props.get("$ai_span_name", "")))
    if kind in ("generation", "embedding"):
        parts.append(f"[{props.get('$ai_model')}]")
    latency = latency_seconds(event)
    if latency is not None:
        parts.append(f"{latency:.3f}s")
    first_token = props.get("$ai_time_to_first_token")
    if isinstance(first_token, (int, float)):
        parts.append(f"ttft {first_token:.3f}s")
    tokens_in, tokens_out = props.get("$ai_input_tokens"), props.get("$ai_output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(
            f"tokens {tokens_in if tokens_in is not None else '-'}/"
            f"{tokens_out if tokens_out is not None else '-'}"
        )
    if props.get("$ai_is_error"):
        parts.append(f"ERROR {error_message(props)}".rstrip())
    return "  ".join(part for part in parts if part)


def render_trace_tree(events: Sequence[Mapping[str, Any]]) -> str:
    """One trace's events as an indented tree (see :func:`trace_rows`)."""
    rows = trace_rows(events)
    if not rows:
        return ""
    lines = [f"trace {trace_id_of(events[0])}"]
    for row in rows:
        prefix = "".join("    " if last else "│   " for last in row.last[:-1])
        lines.append(f"{prefix}{'└── ' if row.last[-1] else '├── '}{describe(row.event)}")
    return "\n".join(lines)


class TracePrinter:
    """Prints each trace's tree once it looks complete, and again if it grows.

    A trace arrives over several batches and its ``$ai_trace`` root ends last,
    so the root's arrival marks it complete.  A trace without one (its root was
    an event span, or never ended) is printed once ``idle_seconds`` pass
    without a new event for it; ``print_ready`` must be called periodically
    for that.  The events come from a :class:`~.store.TraceStore` (its own, or
    the one the viewer shows), so an event re-sent with the same ``uuid`` is
    shown once, as PostHog counts it once.
    """

    def __init__(
        self, out: TextIO, idle_seconds: float = 2.0, store: TraceStore | None = None
    ) -> None:
        self.out = out
        self.idle_seconds = idle_seconds
        self.store = store if store is not None else TraceStore()
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}
        self._printed: dict[str, int] = {}
        self._complete: set[str] = set()

    def on_request(self, request: ReceivedRequest) -> None:
        if not request.accepted:
            return
        added = self.store.add(request.batch)
        with self._lock:
            for trace_id, events in group_by_trace(added).items():
                self._last_seen[trace_id] = time.monotonic()
                if any(event.get("event") == "$ai_trace" for event in events):
                    self._complete.add(trace_id)
        self.print_ready()

    def print_ready(self) -> None:
        """Print the trees that are complete or idle and changed since last printed."""
        now = time.monotonic()
        with self._lock:
            for trace_id, seen in list(self._last_seen.items()):
                events = self.store.events(trace_id)
                if events is None:  # the store let it go: it will never change again
                    self._forget(trace_id)
                    continue
                ready = trace_id in self._complete or now - seen >= self.idle_seconds
                if ready and self._printed.get(trace_id) != len(events):
                    self._printed[trace_id] = len(events)
                    self.out.write(render_trace_tree(events) + "\n\n")
                    self.out.flush()

    def _forget(self, trace_id: str) -> None:
        self._last_seen.pop(trace_id, None)
        self._printed.pop(trace_id, None)
        self._complete.discard(trace_id)
