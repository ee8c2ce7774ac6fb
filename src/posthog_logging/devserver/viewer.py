"""The dev server's web viewer: a page and a small JSON API over a :class:`TraceStore`.

Routes (GET, on the capture server's own port):

- ``/`` and ``/traces/<trace id>``: the page (``web/index.html``); its script
  reads the path and ``?span=<span id>``, so every trace and span has an
  address that opens it directly.
- ``/static/<file>``: the page's script and style sheet (package data, no CDN).
- ``/api/traces?offset=&limit=&q=``: one page of trace summaries, newest first.
- ``/api/traces/<trace id>``: one trace laid out as a tree, each row with its raw event.

The page fetches these and builds every element with ``textContent``: nothing
an event holds is ever parsed as HTML.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .capture import Page
from .events import (
    POINT_EVENTS,
    end_ms,
    error_message,
    latency_seconds,
    node_id,
    properties,
    start_ms,
)
from .store import Event, TraceStore
from .tree import trace_rows

#: Trace summaries per page of the list, unless the page asks for fewer.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: The page's files, served from the package's ``web`` directory.
STATIC_FILES = {
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
#: Never cached: the dev server is local and a new version must show at once.
NO_CACHE = {"Cache-Control": "no-store"}
#: The kinds of events that carry tokens of their own (a trace's would count them twice).
TOKEN_EVENTS = frozenset({"$ai_generation", "$ai_embedding"})


def _total(events: Sequence[Event], name: str) -> float | None:
    """The sum of a numeric property over the events with tokens; None if none has it
    (a sum of whole numbers stays whole)."""
    values: list[float] = []
    for event in events:
        value = properties(event).get(name)
        if isinstance(value, bool) or event.get("event") not in TOKEN_EVENTS:
            continue
        if isinstance(value, (int, float)):
            values.append(value)
    return sum(values) if values else None


def summarize(trace_id: str, events: Sequence[Event]) -> dict[str, Any]:
    """What the trace list shows of one trace."""
    root = next((event for event in events if event.get("event") == "$ai_trace"), None)
    timed = [event for event in events if event.get("event") not in POINT_EVENTS] or events
    starts = [start for event in timed if (start := start_ms(event)) is not None]
    ends = [end for event in timed if (end := end_ms(event)) is not None]
    start = min(starts) if starts else None
    duration = latency_seconds(root) if root is not None else None
    if duration is None and starts and ends:
        duration = (max(ends) - min(starts)) / 1000
    first = root if root is not None else min(timed, key=lambda e: start_ms(e) or 0.0)
    props = properties(first)
    session = next(
        (sid for e in events if (sid := properties(e).get("$ai_session_id")) is not None), None
    )
    costs = _total(events, "$ai_total_cost_usd")
    return {
        "trace_id": trace_id,
        "name": str(props.get("$ai_span_name") or props.get("$ai_trace_name") or trace_id),
        "start_ms": start,
        "duration_s": duration,
        "input_tokens": _total(events, "$ai_input_tokens"),
        "output_tokens": _total(events, "$ai_output_tokens"),
        "cost_usd": costs,
        "error": any(properties(event).get("$ai_is_error") for event in events),
        "models": sorted(
            {str(m) for e in events if (m := properties(e).get("$ai_model")) is not None}
        ),
        "user": None if first.get("distinct_id") is None else str(first.get("distinct_id")),
        "session": None if session is None else str(session),
        "events": len(events),
        "complete": root is not None,
    }


def trace_detail(trace_id: str, events: Sequence[Event]) -> dict[str, Any]:
    """One trace for its page: the summary and the tree's rows, each with its event."""
    rows = trace_rows(events)
    ids = [node_id(row.event) for row in rows]
    id_counts = Counter(ids)
    rows_json = []
    for index, (row, node) in enumerate(zip(rows, ids, strict=True)):
        event = row.event
        props = properties(event)
        uuid = event.get("uuid")
        # The row's address: its span id when no other row has it, else its uuid.
        if node is not None and id_counts[node] == 1:
            key = node
        elif isinstance(uuid, str):
            key = uuid
        else:
            key = f"row-{index}"
        rows_json.append(
            {
                "key": key,
                "node_id": node,
                "uuid": uuid if isinstance(uuid, str) else None,
                "kind": str(event.get("event", "?")),
                "name": _row_name(event),
                "depth": row.depth,
                "start_ms": start_ms(event),
                "end_ms": end_ms(event),
                "latency_s": latency_seconds(event),
                "error": bool(props.get("$ai_is_error")),
                "error_message": error_message(props),
                "model": props.get("$ai_model"),
                "input_tokens": props.get("$ai_input_tokens"),
                "output_tokens": props.get("$ai_output_tokens"),
                "event": event,
            }
        )
    return {"trace_id": trace_id, "summary": summarize(trace_id, events), "rows": rows_json}


def _row_name(event: Event) -> str:
    props = properties(event)
    kind = event.get("event")
    if kind == "$ai_feedback":
        return f"feedback: {props.get('$ai_feedback_text', props.get('$ai_feedback_value', ''))}"
    if kind == "$ai_metric":
        return f"metric: {props.get('$ai_metric_name', '')} = {props.get('$ai_metric_value', '')}"
    return str(props.get("$ai_span_name") or node_id(event) or kind)


class TraceViewer:
    """Answers the capture server's GET requests with the viewer (a :class:`~.capture.PageSource`).

    Summaries are kept per trace until the trace changes, so the list of a
    store holding thousands of traces costs one sort per request.
    """

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._summaries: dict[str, tuple[int, dict[str, Any]]] = {}

    def get(self, target: str) -> Page:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        if path in {"/", "/traces"} or path.startswith("/traces/"):
            return _package_file("index.html", "text/html; charset=utf-8")
        if path.startswith("/static/") and path.removeprefix("/static/") in STATIC_FILES:
            name = path.removeprefix("/static/")
            return _package_file(name, STATIC_FILES[name])
        if path == "/api/traces":
            return _json(200, self.trace_list(query))
        if path.startswith("/api/traces/"):
            trace_id = unquote(path.removeprefix("/api/traces/"))
            events = self.store.events(trace_id)
            if events is None:
                return _json(404, {"error": f"no trace {trace_id} is held"})
            return _json(200, trace_detail(trace_id, events))
        return Page(404, b"not found\n", "text/plain; charset=utf-8")

    def trace_list(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """One page of summaries, newest start first, filtered by ``q`` (any field's text)."""
        offset = max(0, _int(query, "offset", 0))
        limit = min(MAX_PAGE_SIZE, max(1, _int(query, "limit", DEFAULT_PAGE_SIZE)))
        needle = (query.get("q") or [""])[0].strip().lower()
        version = self.store.version
        summaries = self._current_summaries()
        if needle:
            summaries = [s for s in summaries if needle in _searchable(s)]
        summaries.sort(key=lambda s: s["start_ms"] or 0.0, reverse=True)
        return {
            "version": version,
            "held": len(self.store),
            "total": len(summaries),
            "offset": offset,
            "limit": limit,
            "dropped_traces": self.store.dropped_traces,
            "traces": summaries[offset : offset + limit],
        }

    def _current_summaries(self) -> list[dict[str, Any]]:
        traces = self.store.traces()
        with self._lock:
            cached = self._summaries
            fresh: dict[str, tuple[int, dict[str, Any]]] = {}
            for trace_id, events in traces:
                known = cached.get(trace_id)
                if known is None or known[0] != len(events):
                    known = (len(events), summarize(trace_id, events))
                fresh[trace_id] = known
            self._summaries = fresh  # traces the store dropped are forgotten here too
            return [summary for _, summary in fresh.values()]


def _searchable(summary: Mapping[str, Any]) -> str:
    fields = (summary["trace_id"], summary["name"], summary["user"], summary["session"])
    return " ".join(str(field) for field in (*fields, *summary["models"])).lower()


def _int(query: Mapping[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def _json(status: int, document: Any) -> Page:
    """A JSON answer the browser can parse: a NaN or infinity an event held (Python's
    JSON reads them; JavaScript's does not) goes out as null."""
    try:
        text = json.dumps(document, default=str, allow_nan=False)
    except ValueError:
        lenient = json.dumps(document, default=str)
        text = json.dumps(json.loads(lenient, parse_constant=lambda _: None))
    return Page(status, text.encode(), "application/json", NO_CACHE)


def _package_file(name: str, content_type: str) -> Page:
    body = resources.files(__package__).joinpath("web").joinpath(name).read_bytes()
    return Page(200, body, content_type, NO_CACHE)
