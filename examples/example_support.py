"""What every example shares: where the traces go, and showing them afterwards.

With ``POSTHOG_API_KEY`` set, events go to PostHog (``POSTHOG_HOST`` or the US
cloud).  Without it, the examples start the package's own dev server on
127.0.0.1 and, when the program is done, print each trace it received as a
tree, so they show a real trace on a machine with no PostHog account.
"""

from __future__ import annotations

import atexit
import logging
import logging.config
import os
from typing import Any

from posthog_logging.devserver import CaptureServer, group_by_trace, render_trace_tree


def posthog_target() -> tuple[str, str]:
    """(api_key, host): the real project when configured, else a local dev server."""
    api_key = os.environ.get("POSTHOG_API_KEY")
    if api_key:
        return api_key, os.environ.get("POSTHOG_HOST") or "https://us.i.posthog.com"
    server = CaptureServer().start()
    atexit.register(_print_traces, server)  # runs after logging.shutdown has delivered
    print(f"No POSTHOG_API_KEY: sending to the local dev server at {server.url}")
    return "phc_local_dev_server", server.url


def _print_traces(server: CaptureServer) -> None:
    logging.shutdown()  # idempotent: make sure everything was delivered first
    for events in group_by_trace(server.events).values():
        print(render_trace_tree(events))
        print()
    server.stop()


def logging_config(api_key: str, host: str, **handler_options: Any) -> dict[str, Any]:
    """A dictConfig dict: spans to PostHog, the app's own logs to the console."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "posthog": {
                "()": "posthog_logging.PosthogLogHandler",
                "api_key": api_key,
                "host": host,
                **handler_options,
            },
        },
        "loggers": {
            # The tracing API logs span records here, at INFO.
            "posthog_logging.spans": {
                "handlers": ["posthog"],
                "level": "INFO",
                "propagate": False,
            },
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
    }


def setup(**handler_options: Any) -> None:
    """Configure logging for an example with ``dictConfig``."""
    api_key, host = posthog_target()
    logging.config.dictConfig(logging_config(api_key, host, **handler_options))
