"""The loss reporter: every event this process will not deliver passes through one call.

:meth:`LossReporter.record_lost` (Sentry's ``record_lost_event``) takes the
events, the ``stats()['dropped']`` reason and why; with a journal it keeps
them there for the next process or ``replay`` (counted as ``spilled``) when
the reason allows, and otherwise drops them (counted per reason), so that
every count is per event and exact.  Warnings are decided under the sender's
lock and logged by :meth:`LossReporter.log_pending` once it is released: a
user's handler on them may be slow, or even call ``close()``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

from .contract import DIAGNOSTICS_LOGGER
from .encoding import EncodedEvent
from .stats import Stats
from .transport import PostResult

#: Dropped events are reported at once, then at most this often per reason (seconds).
DROP_REPORT_INTERVAL = 30.0

_log = logging.getLogger(DIAGNOSTICS_LOGGER)


class Kept(NamedTuple):
    """What a keeper did with events handed to it."""

    #: Events kept (the first ones handed over).
    kept: int
    #: Why the others were not (the error, with the path), when some were not.
    error: str | None = None


class Keeper(Protocol):
    """Where events that cannot be sent now wait (the journal)."""

    @property
    def directory(self) -> Path: ...

    def keep(self, first: int | None, events: list[EncodedEvent]) -> Kept:
        """Keep ``events`` (numbered from ``first``; None: never numbered) for later."""
        ...

    def settle(self, first: int, count: int) -> None:
        """The events numbered ``first`` onwards need not be sent again."""
        ...


class LossReporter:
    """Counts, keeps and reports the events that will not be delivered here."""

    def __init__(
        self,
        stats: Stats,
        clock: Callable[[], float],
        keeper: Keeper | None = None,
        report_interval: float = DROP_REPORT_INTERVAL,
    ) -> None:
        self.stats = stats
        self.keeper = keeper
        self.report_interval = report_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._unreported: Counter[str] = Counter()
        #: Per reason: when the next report may be made, and ``sent`` at the latest one.
        self._next_report: dict[str, float] = {}
        self._sent_at_report: dict[str, int] = {}
        self._reported_refusals: set[int | None] = set()
        self._pending: list[tuple[str, tuple[object, ...]]] = []

    def record_lost(
        self,
        first: int | None,
        events: list[EncodedEvent],
        reason: str,
        why: str,
        *,
        may_keep: bool,
        failure: PostResult | None = None,
    ) -> None:
        """``events`` (numbered from ``first``) will not be delivered by this process:
        kept in the journal when ``may_keep`` and there is one, else dropped as ``reason``."""
        if not events:
            return
        keeper = self.keeper
        if may_keep and keeper is not None:
            kept = keeper.keep(first, events)
            if kept.kept:
                self.stats.add("spilled", kept.kept)
                self._report_refusal(failure, kept.kept, keeper.directory)
            if kept.error is None:
                return
            why = f"{why}; keeping them failed too ({kept.error})"
            first = None if first is None else first + kept.kept
            events = events[kept.kept :]
        elif keeper is not None and first is not None:
            keeper.settle(first, len(events))  # given up: no later process sends them
        self._count_drop(reason, why, len(events))

    def _count_drop(self, reason: str, why: str, count: int) -> None:
        total = self.stats.drop(reason, count)
        with self._lock:
            self._unreported[reason] += count
            now = self._clock()
            if now < self._next_report.get(reason, now):
                return
            sent = self.stats.snapshot()["sent"]
            unreported = self._unreported.pop(reason)
            if reason not in self._sent_at_report:
                message = "posthog-logging: dropped %d events (%s)"
                args: tuple[object, ...] = (unreported, why)
            else:
                # Said so that a throttled count never reads as the whole loss.
                delivered = sent - self._sent_at_report[reason]
                message = (
                    "posthog-logging: dropped %d more events since the last report (%s); "
                    "%d delivered meanwhile; %d dropped as %s in all"
                )
                args = (unreported, why, delivered, total, reason)
            self._pending.append((message, args))
            self._sent_at_report[reason] = sent
            self._next_report[reason] = now + self.report_interval

    def _report_refusal(self, failure: PostResult | None, count: int, directory: Path) -> None:
        """A refused batch that was kept is reported too, once per status."""
        if failure is None:
            return
        with self._lock:
            if failure.status in self._reported_refusals:
                return
            self._reported_refusals.add(failure.status)
            self._pending.append(
                (
                    "posthog-logging: PostHog did not accept %d events (%s); "
                    "spilled to %s for replay",
                    (count, failure.describe(), directory),
                )
            )

    def note(self, message: str, *args: object) -> None:
        """A warning to log with the others, once the sender's lock is released."""
        with self._lock:
            self._pending.append((message, args))

    def log_pending(self) -> None:
        """Log the warnings decided so far; never call it holding the sender's lock."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
        for message, args in pending:
            _log.warning(message, *args)
