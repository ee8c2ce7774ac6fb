"""The library's own diagnostics logger, kept audible.

Loss reports (records dropped, events undeliverable) go to the
``posthog_logging.diagnostics`` logger.  Two ordinary configurations would
make them vanish without a trace:

* ``dictConfig`` with ``disable_existing_loggers`` (on by default) disables every
  logger that exists and is not configured, this one included: the very
  configuration that closes a handler and leaves it stale silences the report
  of the records that reach it;
* with the handler alone on the root logger, the record finds a handler (so the
  standard library does not fall back to ``logging.lastResort``), and that
  handler ignores the library's own records.

Users quiet the diagnostics with the logger's level instead.

A problem that repeats (every record of a broken producer, every event a hook
rejects) is logged a few times, then only counted: :class:`LogThrottle` is the
one place that decides which occurrences are logged.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from .contract import DIAGNOSTICS_LOGGER
from .records import reached_handlers

log = logging.getLogger(DIAGNOSTICS_LOGGER)


class LogThrottle:
    """Which occurrences of a repeated problem get logged: the first ``limit`` of
    each kind in full, then (:meth:`verdict`) one line saying the rest are only
    counted, then nothing.

    Thread-safe, and re-entrant (a signal handler that logs may interrupt a
    caller's thread that is counting).  The counts live in ``stats()``; this only
    decides what is worth a log line.
    """

    #: Verdicts: log the occurrence in full; log once that the rest are only counted.
    FULL = "full"
    LAST = "last"

    def __init__(self, limit: int = 1) -> None:
        self.limit = limit
        self._seen: Counter[str] = Counter()
        self._lock = threading.RLock()

    def verdict(self, kind: str) -> str | None:
        """Count one occurrence of ``kind``: :attr:`FULL` for the first ``limit``,
        :attr:`LAST` for the one after, None for the rest."""
        with self._lock:
            self._seen[kind] += 1
            seen = self._seen[kind]
        if seen <= self.limit:
            return self.FULL
        return self.LAST if seen == self.limit + 1 else None

    def allows(self, kind: str) -> bool:
        """Count one occurrence of ``kind``; True while it is among the first ``limit``."""
        return self.verdict(kind) == self.FULL


def keep_enabled() -> None:
    """Undo ``disable_existing_loggers`` for the diagnostics logger."""
    log.disabled = False


class LastResortFilter(logging.Filter):
    """Sends a warning to ``logging.lastResort`` when only ``blind`` handlers would get it."""

    def __init__(self, blind: type[logging.Handler]) -> None:
        super().__init__()
        self.blind = blind

    def filter(self, record: logging.LogRecord) -> bool:
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level:
            return True
        handlers = reached_handlers(log)
        if handlers and all(isinstance(handler, self.blind) for handler in handlers):
            last_resort.handle(record)
        return True
