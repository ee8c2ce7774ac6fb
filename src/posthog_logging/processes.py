"""Delivery from worker processes that end without ``logging.shutdown()``.

``multiprocessing`` ends a ``fork`` or ``forkserver`` child (a ``Process`` or a
``Pool`` worker) with ``os._exit()`` once its work returns: no atexit hook runs,
so ``logging.shutdown()`` never closes the handler and whatever it buffered is
lost.  (``spawn`` children exit normally.)  What does run first is
multiprocessing's own exit step, which calls the finalizers registered with
``multiprocessing.util.Finalize``.  Two details decide where to register one:

* a child's bootstrap clears the finalizers it inherited, then runs the callbacks
  registered with ``multiprocessing.util.register_after_fork``; so a child
  registers its finalizer from such a callback, or once it is running;
* ``spawn`` and ``forkserver`` children import the main module, and so may build
  the handler, before that bootstrap.

``Finalize`` and ``register_after_fork`` are in ``multiprocessing.util.__all__``
(undocumented, but unchanged since Python 2.6; multiprocessing's own pools,
queues and managers rely on them).  billiard, Celery's fork of
multiprocessing, shares their registries, so its ``Process`` children are
covered too.  Celery's prefork pool ends its workers with ``os._exit()``
without that exit step; it sends its documented ``worker_process_shutdown``
signal just before, which is the hook used there.

Nothing here imports multiprocessing or Celery: a program that does not use
them pays nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .diagnostics import log

if TYPE_CHECKING:
    from multiprocessing.util import Finalize

#: Finalizers run highest priority first; this one runs after the others (which may
#: log) and, like ``logging.shutdown()`` in a main process, after the child's own
#: children were joined.
EXIT_PRIORITY = -100
_CELERY_RECEIVER_ID = "posthog_logging.processes.WorkerExit"


class WorkerExit:
    """Calls ``on_exit`` when a worker process ends by ``os._exit()``.

    :meth:`arm` is called when a handler starts its listener (once per handler
    and process); :meth:`after_fork` in every forked child.  Registration never
    takes a lock of ours and is idempotent per process, so a signal handler
    that logs may re-enter it.
    """

    def __init__(self, on_exit: Callable[[], None]) -> None:
        self._on_exit = on_exit
        self._finalizer: Finalize | None = None
        #: The processes (pids) that registered an after-fork callback / a Celery receiver.
        self._after_fork_pid: int | None = None
        self._celery_pid: int | None = None

    def arm(self) -> None:
        """Hook this process's exit, for the worker frameworks it has imported.

        Runs on the caller's thread (its first record): a failure is reported, not raised.
        """
        try:
            if "multiprocessing.util" in sys.modules:
                import multiprocessing  # noqa: PLC0415 - imported already (see the docstring)

                if multiprocessing.parent_process() is not None:
                    self._finalize_at_exit()  # a multiprocessing child, already running
                else:
                    self._register_after_fork()  # children to come, or one not bootstrapped yet
            if self._celery_pid != os.getpid() and "celery.signals" in sys.modules:
                self._celery_pid = os.getpid()
                self._connect_celery()
        except Exception as error:
            _report(error)

    def after_fork(self) -> None:
        """In a forked child: if multiprocessing forked it, its bootstrap arms the exit.

        billiard imports ``multiprocessing.util`` only in the child's bootstrap, too
        late for that: import it here for billiard.
        """
        try:
            if "multiprocessing.util" in sys.modules or "billiard" in sys.modules:
                self._register_after_fork()
        except Exception as error:
            _report(error)

    def _register_after_fork(self) -> None:
        if self._after_fork_pid == os.getpid():
            return
        self._after_fork_pid = os.getpid()
        from multiprocessing import util  # noqa: PLC0415 - only when in use (see the docstring)

        util.register_after_fork(self, WorkerExit._finalize_at_exit)

    def _finalize_at_exit(self) -> None:
        """Register the finalizer, unless this process has one (a bootstrap clears them)."""
        if self._finalizer is not None and self._finalizer.still_active():
            return
        from multiprocessing import util  # noqa: PLC0415 - only when in use (see the docstring)

        self._finalizer = util.Finalize(None, self._on_exit, exitpriority=EXIT_PRIORITY)

    def _connect_celery(self) -> None:
        signals: Any = sys.modules["celery.signals"]  # already imported: see arm()
        signals.worker_process_shutdown.connect(
            self._on_celery_worker_exit, weak=False, dispatch_uid=_CELERY_RECEIVER_ID
        )

    def _on_celery_worker_exit(self, *args: Any, **kwargs: Any) -> None:
        self._on_exit()


def _report(error: Exception) -> None:
    log.warning(
        "posthog-logging: could not hook the end of this worker process (%s: %s); "
        "call flush() on the handler before it ends",
        type(error).__name__,
        error,
    )
