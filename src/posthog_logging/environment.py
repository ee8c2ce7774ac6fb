"""Settings an operator gives without code, and hooks named by dotted path.

Read once, when a handler is built; an argument always wins over its
environment variable.  A value that cannot be read is a configuration error
(``ValueError`` or ``TypeError``) naming the variable or argument, raised when
the handler is built: never a guess, never a failure later at run time.

==============================  ===============================================
``POSTHOG_PRIVACY_MODE``        ``privacy_mode``: 1/true/yes/on or 0/false/no/off
``POSTHOG_AI_TRACE_SAMPLE_RATE`` ``sample_rate``: a number in (0, 1]
``POSTHOG_SERVERLESS``          ``serverless``: 1/true/yes/on or 0/false/no/off
==============================  ===============================================

An empty variable counts as unset.
"""

from __future__ import annotations

import os
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from .sampling import check_sample_rate

PRIVACY_MODE_ENV = "POSTHOG_PRIVACY_MODE"
SAMPLE_RATE_ENV = "POSTHOG_AI_TRACE_SAMPLE_RATE"
SERVERLESS_ENV = "POSTHOG_SERVERLESS"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _variable(name: str, environ: Mapping[str, str] | None) -> str | None:
    """The variable's value, stripped; None when unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def flag_setting(
    argument: Any, argument_name: str, variable: str, environ: Mapping[str, str] | None = None
) -> bool:
    """A True/False setting: the argument if given, else ``$variable``, else False."""
    if argument is not None:
        if not isinstance(argument, bool):
            raise TypeError(f"{argument_name} must be True or False, not {argument!r}")
        return argument
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
