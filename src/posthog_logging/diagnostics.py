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
"""

from __future__ import annotations

import logging

from .contract import DIAGNOSTICS_LOGGER

log = logging.getLogger(DIAGNOSTICS_LOGGER)


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
        handlers: list[logging.Handler] = []
        logger: logging.Logger | None = log
        while logger is not None:  # the handlers Logger.callHandlers would call
            handlers.extend(logger.handlers)
            logger = logger.parent if logger.propagate else None
        if handlers and all(isinstance(handler, self.blind) for handler in handlers):
            last_resort.handle(record)
        return True
