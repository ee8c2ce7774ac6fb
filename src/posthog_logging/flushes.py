"""The flush tracker: what is due now, and which ``flush()`` callers wait for what.

Events are numbered in the order they were buffered (``EventBuffer`` sequence
numbers).  ``flush()`` makes everything buffered so far due, whatever the
batch size, and waits until every event before that number is settled (sent,
kept in the journal, or dropped); ``close()`` makes everything due until its
deadline.  No threads here: the :class:`~.sender.Sender` calls it under its lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class FlushTracker:
    """Due marks and the waiting ``flush()`` callers."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: Events before this sequence number go even as a batch under ``flush_at``.
        self.due_before = 0
        #: close(): everything is due until then.
        self.deadline: float | None = None
        self._waiting: list[tuple[int, float, threading.Event]] = []

    def is_due(self, head: int) -> bool:
        """Whether the event numbered ``head`` goes now, however small its batch."""
        return self.deadline is not None or head < self.due_before

    def wait(self, target: int, deadline: float, done: threading.Event) -> None:
        """Set ``done`` once every event before ``target`` is settled (see :meth:`settled`);
        callers whose deadline passed are forgotten."""
        now = self._clock()
        self._waiting = [entry for entry in self._waiting if entry[1] > now]
        self._waiting.append((target, deadline, done))

    def settled(self, oldest_unsettled: int) -> None:
        """Every event before ``oldest_unsettled`` is settled: wake whoever waits on them."""
        still = []
        for entry in self._waiting:
            if oldest_unsettled >= entry[0]:
                entry[2].set()
            else:
                still.append(entry)
        self._waiting = still

    def release_all(self) -> None:
        """The sender stopped: nobody waits any longer."""
        for _, _, done in self._waiting:
            done.set()
        self._waiting.clear()

    @property
    def anyone_waiting(self) -> bool:
        return bool(self._waiting)
