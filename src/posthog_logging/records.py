"""Where a ``LogRecord`` carries its span, feedback or PostHog event.

``logging`` puts ``extra={...}`` keys on the record itself.  loguru's
standard-library sink (``logger.add(handler)``) does not: it puts everything
bound with ``logger.bind(...)`` (or passed as keyword arguments) in one
attribute, ``record.extra``.  Both the handler and the formatter read the
payload through :func:`payload_fields`, so a loguru program needs nothing but
``logger.add(PosthogLogHandler(...))``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .contract import FEEDBACK_ATTR, POSTHOG_EVENT_ATTR, SPAN_ATTR

#: The attributes that make a record one of ours.
PAYLOAD_ATTRS = (SPAN_ATTR, FEEDBACK_ATTR, POSTHOG_EVENT_ATTR)
#: The attribute loguru's standard-library sink puts bound data in.
LOGURU_EXTRA_ATTR = "extra"


def payload_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """The record's attributes, or loguru's ``record.extra`` when the payload is there.

    Attributes set on the record win: a record that has any payload attribute of
    its own is read as it is, whatever ``extra`` holds.
    """
    fields = record.__dict__
    extra = fields.get(LOGURU_EXTRA_ATTR)
    if type(extra) is dict and not any(fields.get(name) is not None for name in PAYLOAD_ATTRS):
        return extra
    return fields
