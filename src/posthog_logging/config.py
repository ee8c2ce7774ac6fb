"""Configuration: where to send, with which key, settings from the environment,
hooks named by dotted path, and argument checks.

Shared by the handler and the ``posthog-logging`` command, so that the command
reads the same environment variables and refuses the same bad values without
importing the handler.  Every check raises at configuration time with the
argument's (or the environment variable's) name in the message and never the
API key.  Environment variables are read once, when a handler is built; an
argument always wins over its variable, and an empty variable counts as unset:
``POSTHOG_API_KEY`` (``api_key``), ``POSTHOG_HOST`` (``host``),
``POSTHOG_PRIVACY_MODE`` (``privacy_mode``) and ``POSTHOG_SERVERLESS``
(``serverless``) as 1/true/yes/on or 0/false/no/off, and
``POSTHOG_AI_TRACE_SAMPLE_RATE`` (``sample_rate``) as a number in (0, 1].
"""

from __future__ import annotations

import logging
import math
import os
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from .contract import DIAGNOSTICS_LOGGER
from .sampling import check_sample_rate

DEFAULT_HOST = "https://us.i.posthog.com"
PRIVACY_MODE_ENV = "POSTHOG_PRIVACY_MODE"
SAMPLE_RATE_ENV = "POSTHOG_AI_TRACE_SAMPLE_RATE"
SERVERLESS_ENV = "POSTHOG_SERVERLESS"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

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


def _variable(name: str, environ: Mapping[str, str] | None) -> str | None:
    """The variable's value, stripped; None when unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def flag_setting(
    argument: Any, argument_name: str, variable: str, environ: Mapping[str, str] | None = None
) -> bool:
    """A True/False setting: the argument if given, else ``$variable``, else False."""
    if argument is not None:
        require_bool(argument_name, argument)
        return bool(argument)
    raw = _variable(variable, environ)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(
        f"environment variable {variable} must be one of 1, true, yes, on, 0, false, no, off "
        f"(or empty), got {raw!r}"
    )


def sample_rate_setting(argument: Any, environ: Mapping[str, str] | None = None) -> float | None:
    """``sample_rate`` if given, else ``$POSTHOG_AI_TRACE_SAMPLE_RATE``; None when neither."""
    if argument is not None:
        return check_sample_rate(argument, "sample_rate")
    raw = _variable(SAMPLE_RATE_ENV, environ)
    if raw is None:
        return None
    name = f"environment variable {SAMPLE_RATE_ENV}"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number in (0, 1], got {raw!r}") from None
    return check_sample_rate(value, name)


def hook_setting(argument: Any, argument_name: str) -> Callable[..., Any] | None:
    """A hook given as a callable, or by name (``"pkg.mod:func"`` or ``"pkg.mod.func"``).

    ``dictConfig`` passes strings, so a name is imported here, when the handler
    is built, and a name that does not resolve to a callable is an error then.
    """
    if argument is None:
        return None
    hook: Any = argument
    if isinstance(argument, str):
        try:
            hook = pkgutil.resolve_name(argument)
        except Exception as error:
            raise ValueError(
                f"{argument_name}: cannot import {argument!r} "
                f"({type(error).__name__}: {error}); use 'package.module:function'"
            ) from error
    if not callable(hook):
        raise TypeError(f"{argument_name} must be callable or its dotted name, not {hook!r}")
    resolved: Callable[..., Any] = hook
    return resolved
