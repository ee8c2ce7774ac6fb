"""Counters behind ``PosthogLogHandler.stats()``, shared by every thread of a handler.

The lock is re-entrant: counting may happen on the caller's thread, and a
signal handler that logs can interrupt that thread while it holds the lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

#: Counters ``stats()`` lists from the start, zero until something happens.
COUNTERS = (
    "sent",
    "mapped",
    "requests",
    "bytes",
    "retried",
    "spilled",
    "shrunk_events",
    "truncated_properties",
    "sampled_out",
    "filtered_out",
    "resumed",
)


class Stats:
    """Thread-safe counters, and dropped events counted by reason."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._dropped: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> int:
        """Add to a counter; returns its new value."""
        with self._lock:
            self._counts[name] += amount
            return self._counts[name]

    def drop(self, reason: str, amount: int = 1) -> int:
        """Count dropped events; returns how many were dropped for ``reason`` so far."""
        with self._lock:
            self._dropped[reason] += amount
            return self._dropped[reason]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            counts["dropped"] = dict(self._dropped)
            return counts
