"""The traces the dev server holds: bounded, each event once, optionally on disk.

PostHog de-duplicates events by ``uuid`` (a client re-sends a batch whose
answer it never saw), so the store keeps the first copy of each ``uuid`` and
ignores the others: the terminal tree and the viewer show what PostHog would.
Memory is bounded by traces and events; beyond either bound the trace least
recently added to is dropped whole.  With a ``path``, every event kept is
appended to that JSON-lines file, which is read back when the store is made,
so a restarted dev server shows what it showed before.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .events import trace_id_of

#: Traces held before the least recently added to are dropped.
DEFAULT_MAX_TRACES = 10_000
#: Events held (all traces together) before traces are dropped likewise.
DEFAULT_MAX_EVENTS = 100_000

Event = Mapping[str, Any]


class TraceStore:
    """Events grouped by trace, each ``uuid`` once, the oldest traces dropped beyond the bounds.

    Thread-safe: the capture server adds from its request threads while the
    viewer and the printer read.  ``version`` changes whenever what is held
    changes, so a reader can tell that nothing did.
    """

    def __init__(
        self,
        *,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_events: int = DEFAULT_MAX_EVENTS,
        path: str | os.PathLike[str] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if max_traces < 1 or max_events < 1:
            raise ValueError("a trace store holds at least one trace and one event")
        self.max_traces = max_traces
        self.max_events = max_events
        self.path = None if path is None else os.fspath(path)
        self.report = report
        #: Traces dropped to stay within the bounds, since the store was made.
        self.dropped_traces = 0
        #: Events that could not be appended to ``path`` (reported once).
        self.unsaved_events = 0
        self.version = 0
        self._lock = threading.Lock()
        # Insertion order is the order of the latest addition: the first trace goes first.
        self._traces: dict[str, list[Event]] = {}
        self._uuids: set[str] = set()
        self._event_count = 0
        if self.path is not None:
            self._load(self.path)
            with open(self.path, "a", encoding="utf-8"):
                pass  # a path that cannot be written fails now, not at the first event

    def add(self, events: Iterable[Event]) -> list[Event]:
        """Keep the events not held yet (by ``uuid``); returns those, in order."""
        with self._lock:
            added = [event for event in events if self._keep(event)]
            if added:
                self.version += 1
                self._enforce_bounds()
        if added and self.path is not None:
            self._save(added)
        return added

    def events(self, trace_id: str) -> list[Event] | None:
        """One trace's events in order of arrival; None when it is not held."""
        with self._lock:
            events = self._traces.get(trace_id)
            return None if events is None else list(events)

    def traces(self) -> list[tuple[str, list[Event]]]:
        """Every trace held with its events, the least recently added to first."""
        with self._lock:
            return [(trace_id, list(events)) for trace_id, events in self._traces.items()]

    def __len__(self) -> int:
        """Traces held."""
        with self._lock:
            return len(self._traces)

    def _keep(self, event: Event) -> bool:
        """Hold one event unless its ``uuid`` is held already (caller holds the lock)."""
        uuid = event.get("uuid")
        if isinstance(uuid, str):
            if uuid in self._uuids:
                return False
            self._uuids.add(uuid)
        trace_id = trace_id_of(event)
        trace = self._traces.pop(trace_id, None)
        if trace is None:
            trace = []
        trace.append(event)
        self._traces[trace_id] = trace  # now the most recently added to
        self._event_count += 1
        return True

    def _enforce_bounds(self) -> None:
        """Drop the traces least recently added to until both bounds hold (the
        newest trace stays, however large)."""
        while len(self._traces) > 1 and (
            len(self._traces) > self.max_traces or self._event_count > self.max_events
        ):
            oldest = next(iter(self._traces))
            for event in self._traces.pop(oldest):
                uuid = event.get("uuid")
                if isinstance(uuid, str):
                    self._uuids.discard(uuid)
                self._event_count -= 1
            self.dropped_traces += 1

    def _load(self, path: str) -> None:
        """Read back the events a previous run kept (a missing file is an empty one)."""
        try:
            with open(path, encoding="utf-8") as lines:
                events, unreadable = _read_events(lines)
        except FileNotFoundError:
            return
        with self._lock:
            for event in events:
                self._keep(event)
            self._enforce_bounds()
            self.version += 1
        if unreadable:
            self._report(f"{path}: skipped {unreadable} lines that are not JSON events")

    def _save(self, events: list[Event]) -> None:
        lines = "".join(json.dumps(event, default=str) + "\n" for event in events)
        try:
            with open(self.path or "", "a", encoding="utf-8") as file:
                file.write(lines)
        except OSError as error:
            first = self.unsaved_events == 0
            self.unsaved_events += len(events)
            if first:
                self._report(f"could not keep events in {self.path}: {error}")

    def _report(self, message: str) -> None:
        if self.report is not None:
            self.report(message)


def _read_events(lines: Iterable[str]) -> tuple[list[Event], int]:
    """The JSON objects among ``lines`` and how many other non-blank lines there were."""
    events: list[Event] = []
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            unreadable += 1
    return events, unreadable
