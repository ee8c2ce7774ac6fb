"""An in-memory exporter for the sender's unit tests: no socket, no real time.

It answers each export from a script of results (accept when the script is
empty) and records every batch it was given, as OpenTelemetry's
``InMemorySpanExporter`` does for its processors' tests.
"""

from __future__ import annotations

import threading

from posthog_logging.encoding import EncodedEvent
from posthog_logging.exporter import NOT_SENT, Outcome
from posthog_logging.transport import PostResult


class InMemoryExporter:
    """Accepts (or refuses, as scripted) batches and keeps what it accepted."""

    def __init__(self, *answers: PostResult | None, hang: bool = False) -> None:
        self.answers = list(answers)
        self.batches: list[list[EncodedEvent]] = []
        self.accepted: list[EncodedEvent] = []
        self.stopped = False
        #: With ``hang``, every export waits for this (set at shutdown): a server
        #: that never answers.
        self.release = threading.Event()
        self.hang = hang
        self._lock = threading.Lock()

    def export(self, events: list[EncodedEvent], timeout: float | None = None) -> Outcome:
        with self._lock:
            if self.stopped:
                return Outcome(0, 0, NOT_SENT)
            self.batches.append(list(events))
            answer = self.answers.pop(0) if self.answers else None
        if self.hang:
            self.release.wait()
            return Outcome(0, len(events), PostResult(None, "ReadTimeout"))
        if answer is not None:
            return Outcome(0, len(events), answer)
        with self._lock:
            self.accepted.extend(events)
        return Outcome(len(events), 0, None)

    def shutdown(self) -> None:
        self.stopped = True
        self.release.set()


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
