"""Delivery when a process is ended by SIGTERM, as servers under Docker and Kubernetes are.

SIGTERM left to its default disposition kills the process at once: no atexit
hook runs, so ``logging.shutdown()`` never closes the handler and whatever it
buffered is lost.  Servers stop this way too:

* **uvicorn** (``uvicorn app:app``, ``uvicorn.run()``, ``--workers``) handles
  SIGTERM with ``Server.handle_exit``, shuts down gracefully, then restores the
  handler it found and re-raises the signal (``Server.capture_signals``) so the
  process still dies by it;
* **gunicorn with uvicorn workers** (``uvicorn.workers.UvicornWorker``, the
  ``uvicorn-worker`` package): the worker resets SIGTERM to its default before
  it loads the application, then serves as uvicorn does;
* **hypercorn** returns from its serve loop and exits normally: atexit runs and
  nothing needs doing.

:class:`ServerExit` hooks both paths, on the main thread (the only one that may
set a signal handler), when a handler is created and when it starts:

1. SIGTERM at its default: install a handler that closes the live handlers,
   then restores the default and raises SIGTERM again.  uvicorn's
   ``capture_signals`` saves this handler and calls it by its re-raise.
2. SIGTERM handled by a uvicorn ``Server`` (the application is imported inside
   ``capture_signals``): wrap that handler.  When SIGTERM arrives, block it on
   the main thread, register an atexit hook, and let uvicorn shut down.  Its
   re-raise then stays pending, uvicorn returns, the interpreter exits, and the
   hook closes the live handlers and unblocks SIGTERM: the process still ends
   by the signal, after delivering.

Any other SIGTERM handler belongs to the application or its server, which
decides how the process ends; it is left alone.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeGuard

from .diagnostics import log

_Handler = Callable[[int, "FrameType | None"], Any]


class ServerExit:
    """Calls ``on_exit`` before the process dies by SIGTERM (see the module docstring)."""

    def __init__(self, on_exit: Callable[[], None]) -> None:
        self._on_exit = on_exit
        #: The handler this hook installed last (the current one, unless replaced).
        self._installed: _Handler | None = None

    def arm(self) -> None:
        """Hook SIGTERM if this is the main thread and its handler is one of the two
        kinds above; a failure is reported, not raised (it runs in the caller's thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current is not None and current is self._installed:
                return  # already hooked
            if current == signal.SIG_DFL:
                self._install(self._close_then_die)
            elif _is_uvicorn_handler(current) and hasattr(signal, "pthread_sigmask"):
                self._install(self._deferring(current))
        except Exception as error:
            log.warning(
                "posthog-logging: could not hook SIGTERM (%s: %s); "
                "call flush() on the handler before the process is stopped",
                type(error).__name__,
                error,
            )

    def _install(self, handler: _Handler) -> None:
        signal.signal(signal.SIGTERM, handler)
        self._installed = handler

    def _close_then_die(self, signum: int, frame: FrameType | None) -> None:
        """Case 1: deliver, then end by the signal as the default would have."""
        self._on_exit()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)

    def _deferring(self, server_handler: _Handler) -> _Handler:
        """Case 2: uvicorn's handler, with the process's end moved after delivery."""

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            atexit.register(self._close_then_unblock)
            server_handler(signum, frame)

        return on_sigterm

    def _close_then_unblock(self) -> None:
        """At exit: deliver, then let the re-raised SIGTERM (if pending) end the process."""
        self._on_exit()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _is_uvicorn_handler(handler: Any) -> TypeGuard[_Handler]:
    """``Server.handle_exit`` of a running uvicorn server (or a subclass's)."""
    server_module = sys.modules.get("uvicorn.server")
    server_class = getattr(server_module, "Server", None)
    owner = getattr(handler, "__self__", None)
    return (
        server_class is not None
        and isinstance(owner, server_class)
        and getattr(handler, "__name__", None) == "handle_exit"
    )
