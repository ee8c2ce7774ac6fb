"""Exceptions in the shape PostHog's error tracking reads (``$exception_list``).

``capture_exceptions=True`` sends one ``$exception`` event for a span that ended
with an exception (mapping-spec Part 2 (r)).  The list is built exactly as
``posthog.Client.capture_exception`` builds it, by the ``posthog`` package's own
helpers in ``posthog.exception_utils`` (``exceptions_from_error_tuple`` and
``handle_in_app``, both public and unchanged from posthog 6.7 on): each entry
has ``type``, ``value``, ``module``, ``mechanism`` and a ``stacktrace`` of raw
frames with their source lines, chained causes included, in the order the
installed ``posthog`` uses.  So an issue in Error tracking groups the same
whether the exception came from posthog-python or from this library.

It runs on the listener thread: the traceback's frames have finished, and only
their code, line numbers and source files are read.
"""

from __future__ import annotations

import os
from typing import Any

from posthog.exception_utils import exceptions_from_error_tuple, handle_in_app

#: How the exception reached us: it left a span, which re-raised it.
MECHANISM = {"type": "generic", "handled": False}


def exception_list(error: BaseException) -> list[dict[str, Any]]:
    """``$exception_list`` for ``error``, its frames marked in-app as posthog-python
    marks them for a client with its default project root (the working directory)."""
    exc_info = (type(error), error, error.__traceback__)
    exceptions: list[dict[str, Any]] = exceptions_from_error_tuple(exc_info, mechanism=MECHANISM)
    handle_in_app({"exception": {"values": exceptions}}, project_root=os.getcwd())
    return exceptions
