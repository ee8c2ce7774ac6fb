"""A handler's lifecycle: its listener's start, the shutdown deadline, the numbered
shutdown, and the reset in a forked child; and the process hooks behind them.

:class:`Lifecycle` owns what one handler runs in this process: the record queue
(:class:`~.callerqueue.RecordQueue`), the counters, the pipeline and its
listener.  The handler starts the listener lazily, from the first record (and
again in a forked child), because ``dictConfig`` on 3.12+ builds but never
starts listeners.

Locks: ``logging.shutdown()`` calls ``flush()`` and ``close()`` with the
handler's lock held.  No thread of the library ever takes that lock, so
waiting for the listener or the senders there is safe.  If no listener could
be started (new threads may fail at interpreter exit), the calling thread does
the listener's and the senders' work itself.

Process hooks: the only things this package does when it is imported, all
installed by :func:`install_process_hooks` (called once, by :mod:`.handler`):

1. an ``atexit`` hook (:class:`InterpreterExit`) that notes that exit began, so
   the ``flush()`` and ``close()`` of ``logging.shutdown()`` at exit share one
   ``shutdown_timeout``;
2. an after-fork hook (``os.register_at_fork``) that closes the child's copies
   of the parent's journal files (:func:`~.journal.forget_parent_journals`) and
   resets every live handler in the child (:meth:`Lifecycle.reset_after_fork`);
3. a filter on the library's diagnostics logger
   (:class:`~.diagnostics.LastResortFilter`) so its warnings are heard when our
   handler is the only one that would get them.

Two more are armed later, never at import: SIGTERM's end of a server process
(:mod:`.servers`), when a handler is registered and again when its listener
starts (a worker forked after the first arm resets SIGTERM); and the end of a
worker process that exits without ``logging.shutdown()`` (:mod:`.processes`),
when a listener starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Protocol

from . import diagnostics
from .callerqueue import CLOSED_DROP, UNMAPPED_AT_DEADLINE, RecordQueue
from .journal import forget_parent_journals
from .pipeline import (
    CloseRequest,
    EventListener,
    EventPipeline,
    FlushRequest,
    build_pipeline,
    release_unread,
)
from .processes import WorkerExit
from .sender import library_thread
from .servers import ServerExit
from .settings import Settings
from .stats import Stats
from .transport import Transport
from .values import time_ms


class InterpreterExit:
    """Whether this process's exit has begun, for flush() and close() at exit to
    share one ``shutdown_timeout`` (see :meth:`Lifecycle.deadline`).

    :meth:`begin` is an atexit hook registered when the handler module is imported,
    after ``logging`` registered ``logging.shutdown``: atexit runs hooks last
    registered first, so it runs before ``logging.shutdown()``.  A worker ended
    by ``os._exit()`` runs no atexit hook; there only close() is called
    (:mod:`.processes`), which takes ``shutdown_timeout`` on its own.
    """

    def __init__(self) -> None:
        self.begun = False

    def begin(self) -> None:
        self.begun = True


class Lifecycle:
    """Start, deadlines and shutdown of one handler's listener and senders."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        self.stats = Stats()
        self.records = RecordQueue(
            self.stats,
            max_size=settings.max_queue_size,
            overflow=settings.overflow,
            block_timeout=settings.block_timeout,
        )
        self.pipeline: EventPipeline = build_pipeline(settings, transport, self.stats)
        self.listener: EventListener | None = None
        #: The shutdown's request, once begun (see begin_close()).
        self._close_request: CloseRequest | None = None
        #: Whether the listener was handed that request (else close() does its work).
        self._close_handed = False
        #: When the shutdown began and when its budget ends (monotonic), once begun.
        self.shutdown_began: float | None = None
        self.shutdown_deadline: float | None = None
        #: Set once a close() claimed the shutdown's second half; later callers wait.
        self._finishing = False
        #: Set once the first close() finished: later callers wait for it (see close()).
        self._shutdown_done = threading.Event()
        self._closing_thread: int | None = None
        #: At exit: when this handler's shutdown_timeout ends (see deadline()).
        self._exit_deadline: float | None = None
        self._lock = threading.RLock()  # re-entrant: a signal handler may log
        self._starting = False

    # ------------------------------------------------------------------ start
    def start_listener(self) -> None:
        """Start the listener (once per process), from the caller's thread."""
        with self._lock:
            # A signal handler that logs may re-enter here on this thread, between any
            # two bytecodes: _starting makes it leave the start to the call it
            # interrupted (whose listener reads its record too), and the listener is
            # checked only once _starting is set, so a start that a re-entrant call
            # completed just before is seen.
            if self._starting:
                return
            self._starting = True
            try:
                if self.listener is None and not self.records.closed:
                    diagnostics.keep_enabled()
                    _worker_exit.arm()  # this process may end without logging.shutdown()
                    _server_exit.arm()  # (a worker forked after the first arm resets SIGTERM)
                    listener = EventListener(self.records.queue, self.pipeline)
                    listener.start()
                    self.listener = listener
            except RuntimeError:
                pass  # at interpreter exit new threads cannot start; close() drains inline
            finally:
                self._starting = False

    def listener_alive(self) -> bool:
        listener = self.listener
        thread = listener.thread if listener is not None else None
        return bool(thread is not None and thread.is_alive())

    # ---------------------------------------------------------------- flush
    def flush(self) -> None:
        """Wait until everything queued before was sent (or spilled, or dropped),
        for at most ``flush_timeout`` and never longer than ``shutdown_timeout``."""
        settings = self.settings
        deadline = self.deadline(min(settings.flush_timeout, settings.shutdown_timeout))
        self._finish(FlushRequest(deadline), deadline)

    def deadline(self, seconds: float, now: float | None = None) -> float:
        """``seconds`` from now; at exit, never past this handler's shutdown deadline,
        which its first flush() or close() at exit sets ``shutdown_timeout`` ahead.

        So the flush() and close() of ``logging.shutdown()`` at exit share one
        ``shutdown_timeout``, and the atexit hooks that ran before (joining a
        ``multiprocessing`` child, say) take none of it.  Outside exit, flush()
        and close() keep their own budgets, whatever another thread did.
        """
        if now is None:
            now = time.monotonic()
        if not _interpreter_exit.begun:
            return now + seconds
        if self._exit_deadline is None:
            self._exit_deadline = now + self.settings.shutdown_timeout
        return min(now + seconds, self._exit_deadline)

    # ---------------------------------------------------------------- close
    def begin_close(self, now: float | None = None) -> None:
        """The first half of close(), which never waits: refuse new records, fix the
        shutdown deadline (``shutdown_timeout`` from ``now``) and hand the listener
        its :class:`CloseRequest`, so it maps what is queued, aborts the open spans
        and makes everything due while this thread goes on (to other handlers:
        :func:`begin_logging_shutdown`).  close() finishes, by the same deadline.
        """
        with self._lock:
            if self.records.closed:
                return
            self.records.closed = True
            if self.settings.disabled:
                return
            began = time.monotonic() if now is None else now
            deadline = self.deadline(self.settings.shutdown_timeout, now=began)
            request = CloseRequest(deadline, now_ms=time_ms(time.time()) or 0)
            self._close_request, self.shutdown_began = request, began
            self.shutdown_deadline = deadline
            self._close_handed = self._hand_to_listener(request)

    def close(self) -> None:
        """Shut down once: begin (if no one did), then finish the numbered steps.

        Only the first close() finishes; a later or concurrent one
        (``logging.shutdown()`` at exit while another thread closes) waits for
        it, up to its own ``shutdown_timeout``, unless it comes from the closing
        thread itself or from one of the library's threads (a log record of the
        shutdown), which the shutdown may be waiting on.
        """
        self.begin_close()
        with self._lock:
            finish = not self._finishing
            self._finishing = True
            if finish:
                self._closing_thread = threading.get_ident()
        if finish:
            try:
                if self._close_request is not None:
                    self._shut_down(self._close_request)
            finally:
                self._shutdown_done.set()
        elif self._closing_thread != threading.get_ident() and not library_thread.active:
            self._shutdown_done.wait(
                max(0.0, self.deadline(self.settings.shutdown_timeout) - time.monotonic())
            )

    def _shut_down(self, request: CloseRequest) -> None:
        """Deliver what was logged before close() by the request's deadline; keep the rest.

        The shutdown order, in one place:
        """
        pipeline, deadline = self.pipeline, request.deadline
        # 1. The listener maps every record queued before close() (later ones are
        #    refused: the queue is closed), aborts the spans still open
        #    (docs/mapping-rules.md §1.2), makes everything due, and
        #    stops (EventListener).  Without a listener (or on the listener's own
        #    thread), this thread does that work.
        self._finish(request, deadline, handed=self._close_handed)
        # 2. If the listener missed the deadline, this thread aborts the open spans;
        #    the records the listener never reached are dropped unmapped (counted as
        #    records in "unmapped_at_deadline"; "shutdown_deadline" counts events):
        #    mapping them here would overrun the deadline.
        if not request.done.is_set():
            unmapped = pipeline.take_over(self.records.drain(), request.now_ms)
            if unmapped:
                self.records.count_drop(
                    UNMAPPED_AT_DEADLINE,
                    "the listener was still mapping at the shutdown deadline; "
                    "records it never reached are dropped",
                    unmapped,
                )
        # 3. The senders deliver everything buffered, in batches however small,
        #    until the deadline; this thread sends when no sender thread could start,
        #    or when it is one of the library's own (close() from a log record of theirs).
        pipeline.sender.drain(deadline)
        # 4. Whatever is still undelivered (in flight included) is spilled, or dropped
        #    and counted; the sender threads stop, the kept-alive connections close.
        pipeline.sender.abandon()
        self.transport.close()
        # 5. Records still queued (logged as close() began) are dropped, counted; a
        #    caller that queues one after this drops it itself (see the handler's
        #    emit).  A listener still running (late, or the thread that called
        #    close()) is handed its sentinel, so it stops.
        self.records.sealed = True
        self.drop_queued()
        # 6. One warning sums up what was lost or spilled.
        self._report_losses()

    def _hand_to_listener(self, request: FlushRequest) -> bool:
        """Queue ``request`` for the running listener; False when there is none to
        carry it out (none started, it ended, or this thread is the listener)."""
        listener = self.listener
        thread = listener.thread if listener is not None else None
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self.records.queue.put(request)
            return True
        return False

    def _finish(self, request: FlushRequest, deadline: float, *, handed: bool = False) -> None:
        """Have ``request`` carried out by the listener, waiting up to ``deadline``
        (``handed``: it was queued already); without a listener, on this thread."""
        if handed or self._hand_to_listener(request):
            request.done.wait(max(0.0, deadline - time.monotonic()))
            return
        self._drain_inline(request)

    def _drain_inline(self, request: FlushRequest) -> None:
        """Do the listener's work on this thread (no listener could run)."""
        with self._lock:
            was_active, library_thread.active = library_thread.active, True
            try:
                for item in self.records.drain():
                    if item is not None:
                        self.pipeline.process(item)
                self.pipeline.process(request)
            finally:
                library_thread.active = was_active

    def drop_queued(self) -> None:
        """After the shutdown: whatever is still queued will never be read.

        Records are counted as dropped, flush() callers released; a listener
        still running (late: the drain may have taken its CloseRequest) gets a
        sentinel, so it stops.
        """
        dropped = release_unread(self.records.drain())
        if dropped:
            self.records.count_drop("closed", CLOSED_DROP, dropped)
        listener = self.listener
        if listener is not None and self.listener_alive():
            listener.enqueue_sentinel()

    def _report_losses(self) -> None:
        """One WARNING at close when events were dropped or spilled."""
        counts = self.stats.snapshot()
        dropped, spilled = counts["dropped"], counts["spilled"]
        if spilled:
            diagnostics.log.warning(
                "posthog-logging: closed with dropped events %s and %d events spilled to %s",
                dropped,
                spilled,
                self.settings.spill_dir,
            )
        elif dropped:
            diagnostics.log.warning("posthog-logging: closed with dropped events %s", dropped)

    # ----------------------------------------------------------------- fork
    def reset_after_fork(self) -> None:
        """In a forked child: empty queue, fresh counters and state, a listener and
        senders of its own later, and fresh connections.

        The parent's buffered events stay the parent's to send.
        """
        self._lock = threading.RLock()
        self._starting = False
        # A close() another thread of the parent was running is not this process's to
        # wait for, nor to finish.
        self._shutdown_done = threading.Event()
        if self.records.closed:
            self._shutdown_done.set()
        self._finishing = self.records.closed
        self._close_request, self._close_handed = None, False
        self.shutdown_began = self.shutdown_deadline = None
        self._closing_thread = None
        self._exit_deadline = None
        self.stats = Stats()
        self.records.reset_after_fork(self.stats)
        self.transport.reset_after_fork()
        self.pipeline = build_pipeline(self.settings, self.transport, self.stats)
        self.listener = None


# ------------------------------------------------------------ process hooks
class LiveHandler(Protocol):
    """What the worker-exit hook calls on a live handler."""

    def close(self) -> None: ...


#: The handlers that are open and enabled in this process, with their lifecycles.
_live: weakref.WeakKeyDictionary[LiveHandler, Lifecycle] = weakref.WeakKeyDictionary()
_interpreter_exit = InterpreterExit()
_LOGGING_SHUTDOWN = logging.shutdown.__code__
#: How far up the stack ``logging.shutdown()`` may be from the handler's flush() or
#: close() that asks: the handler's method, and a subclass's override or two.
_SHUTDOWN_FRAMES = 3


def register(handler: LiveHandler, lifecycle: Lifecycle) -> None:
    """Count ``handler`` among the live ones (the exit and fork hooks reach it), and
    hook SIGTERM: a server may end this process by it."""
    _live[handler] = lifecycle
    _server_exit.arm()


def unregister(handler: LiveHandler) -> None:
    _live.pop(handler, None)


def _close_live() -> None:
    """A worker process ends without ``logging.shutdown()``: close as it would have."""
    for handler in list(_live):
        handler.close()


def begin_logging_shutdown() -> None:
    """When ``logging.shutdown()`` is what called the handler's flush() or close(),
    begin the shutdown of every live handler it is about to close, at one instant.

    ``logging.shutdown()`` flushes and closes handlers one after another, each
    with its lock held: each of ours would wait out flush()'s budget and then
    close()'s, handler after handler.  Begun together (:meth:`Lifecycle.begin_close`:
    nothing waits, no handler's lock is taken), they deliver concurrently on
    their own threads, each by ``shutdown_timeout`` from that instant; each
    flush() then returns at once (close() follows), and each close() finishes
    its handler's steps by the deadline it already has.  So the whole call takes
    at most the largest ``shutdown_timeout``, at exit and when an application
    calls it (an AWS Lambda handler, a ``finally:`` block).

    Reads the caller's frames: ``logging`` gives a handler no other sign that
    it is being shut down.
    """
    frame: FrameType | None = sys._getframe(1).f_back  # 1: the handler's method
    for _ in range(_SHUTDOWN_FRAMES):
        if frame is None or frame.f_code is _LOGGING_SHUTDOWN:
            break
        frame = frame.f_back
    if frame is None or frame.f_code is not _LOGGING_SHUTDOWN:
        return
    closing = {id(ref()) for ref in frame.f_locals.get("handlerList", ())}
    now = time.monotonic()
    for handler, lifecycle in list(_live.items()):
        if id(handler) in closing:
            lifecycle.begin_close(now)


_worker_exit = WorkerExit(on_exit=_close_live)
_server_exit = ServerExit(on_exit=_close_live)


def _after_fork_in_child() -> None:
    _interpreter_exit.begun = False  # a child forked by an exit hook has its own exit
    forget_parent_journals()  # first: the reset below opens the child's own
    for lifecycle in list(_live.values()):
        lifecycle.reset_after_fork()
    _worker_exit.after_fork()


def install_process_hooks(handler_class: type[logging.Handler]) -> None:
    """The import-time side effects, all of them (see the module docstring)."""
    atexit.register(_interpreter_exit.begin)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    # The handler never consumes the library's own warnings: never let it be their only reader.
    diagnostics.log.addFilter(diagnostics.LastResortFilter(blind=handler_class))
