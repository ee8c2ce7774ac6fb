"""``capture_logs``: warnings and errors logged inside a span, as event spans under it.

Also knows which loggers are the library's own (its diagnostics and its HTTP
stack's), whose records the handler never consumes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..contract import CURRENT_SPAN, DIAGNOSTICS_LOGGER

#: Loggers whose records the handler never consumes (its own and its transport's).
OWN_LOGGERS = frozenset({DIAGNOSTICS_LOGGER, "posthog", "urllib3", "requests"})


def is_own_logger(name: str) -> bool:
    """True for the library's diagnostics and its transport's loggers (and their children)."""
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


def log_event_span(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """A warning logged inside an active span, as an event span under it (None outside)."""
    active = CURRENT_SPAN.get()
    if active is None or is_own_logger(record.name):
        return None
    message = record.getMessage()
    attributes: dict[str, Any] = {"level": record.levelname, "logger": record.name}
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        attributes["exception"] = f"{type(error).__name__}: {error}"
    event = dict(
        active.event_span_dict(f"log {record.levelname}: {message[:80]}", message, attributes)
    )
    if record.levelno >= logging.ERROR:
        event["errorInfo"] = {"message": message, "category": "USER"}
    return event
