"""Configuration: where to send, with which key, and argument checks.

Shared by the handler and the ``posthog-logging`` command, so that the command
reads the same environment variables and refuses the same bad values without
importing the handler.  Every check raises at configuration time with the
argument's name in the message and never the API key.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from .contract import DIAGNOSTICS_LOGGER

DEFAULT_HOST = "https://us.i.posthog.com"

_log = logging.getLogger(DIAGNOSTICS_LOGGER)


def resolve_api_key(api_key: Any) -> str | None:
    """The API key from the argument, else ``$POSTHOG_API_KEY``; None when neither."""
    if api_key is None:
        api_key = os.environ.get("POSTHOG_API_KEY")
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError(f"api_key must be a string, not {type(api_key).__name__}")
    return (api_key.strip() or None) if api_key else None


def resolve_host(host: Any) -> str:
    """The host from the argument, else ``$POSTHOG_HOST``, else the US cloud."""
    if host is None:
        host = os.environ.get("POSTHOG_HOST") or None
    if host is None:
        _log.info(
            "posthog-logging: no host given, using the US cloud %s "
            "(EU projects set host or POSTHOG_HOST to https://eu.i.posthog.com)",
            DEFAULT_HOST,
        )
        return DEFAULT_HOST
    if not isinstance(host, str):
        raise TypeError(f"host must be a string, not {type(host).__name__}")
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"host must be an http:// or https:// URL, got {host!r}")
    return host.rstrip("/")


def require_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")


def optional_str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")


def positive_int(name: str, value: Any, default: int = 0) -> int:
    """``value`` when it is an int of at least 1; ``default`` (when given) for None."""
    if value is None and default:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def positive_seconds(name: str, value: Any, default: float = 0) -> float:
    """``value`` as float seconds when finite and positive; ``default`` (when given) for None."""
    if value is None and default:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    return float(value)
