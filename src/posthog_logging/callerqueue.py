"""The caller's side of the queue: what a record becomes on the caller's thread,
and the bounded queue the listener reads.

:func:`record_item` (with :func:`snapshot`) turns a record into the plain tuple
the listener maps (:data:`~.pipeline.RecordItem`), copying what the caller
could still change.  :class:`RecordQueue` bounds the queue in records, as
``QueueHandler`` does not: when it is full, the caller waits for room
(``overflow="block"``) or the oldest record is dropped, counted.  Nothing here
waits on the network or takes a lock the listener needs, so it is safe on any
thread that logs.  The handler inlines the put itself (see ``PosthogLogHandler.emit``):
a method call per span costs the caller's thread more than the rest of the put.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Mapping
from typing import Any

from . import diagnostics
from .contract import FEEDBACK_ATTR, POSTHOG_EVENT_ATTR, SupportsSpanDict
from .mapping.logs import is_own_logger, log_event_span
from .pipeline import FEEDBACK_ITEM, POSTHOG_EVENT_ITEM, SPAN_ITEM, RecordItem, is_record
from .sender import library_thread
from .stats import Stats

#: Why a record logged once close() began is dropped (counted).
CLOSED_DROP = "records logged after close() are dropped"
#: The stats()['dropped'] reason of records the listener had not mapped by the shutdown
#: deadline (records; the events not delivered by then are "shutdown_deadline").
UNMAPPED_AT_DEADLINE = "unmapped_at_deadline"
#: The nested fields copied on the caller's thread, so later mutation can't leak in:
#: a span's, then a feedback's (metadata) and a PostHog event's (properties).
SPAN_FIELDS = ("attributes", "metadata", "input", "output")
OTHER_FIELDS = ("metadata", "properties")


def snapshot(payload: Any, nested: tuple[str, ...]) -> Any:
    """A copy the caller can no longer change: top level plus the ``nested`` fields."""
    if type(payload) is dict:
        copy = payload.copy()
        for key in nested:
            value = copy.get(key)
            if type(value) is dict or type(value) is list:
                copy[key] = value.copy()
        return copy
    if isinstance(payload, SupportsSpanDict):
        return payload.to_span_dict()
    if isinstance(payload, Mapping):
        return dict(payload)
    return payload  # not a mapping: the listener rejects it, counted


def other_item(
    record: logging.LogRecord, fields: Mapping[str, Any], capture_logs: bool
) -> RecordItem | None:
    """The item for a feedback, PostHog event or captured log record; None for the rest.

    (A span record's item is built inline by the handler: it is the hot path.)
    """
    feedback = fields.get(FEEDBACK_ATTR)
    if feedback is not None and not is_own_logger(record.name):
        return (FEEDBACK_ITEM, snapshot(feedback, OTHER_FIELDS), None, record.created)
    posthog_event = fields.get(POSTHOG_EVENT_ATTR)
    if posthog_event is not None:
        return (POSTHOG_EVENT_ITEM, snapshot(posthog_event, OTHER_FIELDS), None, record.created)
    if capture_logs and record.levelno >= logging.WARNING:
        log_span = log_event_span(record)
        if log_span is not None:
            return (SPAN_ITEM, log_span, None, record.created)
    return None


class RecordQueue:
    """The queue between the callers and the listener, bounded in records.

    ``closed`` is set when close() begins (new records are refused, counted);
    ``sealed`` when close() emptied the queue for the last time (a record put
    after that is cleaned up by the caller that put it).
    """

    def __init__(self, stats: Stats, *, max_size: int, overflow: str, block_timeout: float) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stats = stats
        self.max_size = max_size
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.closed = False
        self.sealed = False
        self.received = 0
        self.ignored = 0
        self._drop_logs = diagnostics.LogThrottle()

    def reset_after_fork(self, stats: Stats) -> None:
        """In a forked child: an empty queue, fresh counters; ``closed`` stays."""
        self.queue = queue.SimpleQueue()
        self.stats = stats
        self.received = self.ignored = 0
        self._drop_logs = diagnostics.LogThrottle()

    def count_drop(self, reason: str, message: str, count: int = 1) -> None:
        """Count dropped records; the first drop of each reason is logged."""
        self.stats.drop(reason, count)
        if self._drop_logs.allows(reason):
            diagnostics.keep_enabled()
            diagnostics.log.warning(
                "posthog-logging: %s (counted in stats()['dropped'][%r])", message, reason
            )

    def make_room(self) -> bool:
        """The queue is full: wait for room (overflow='block') or drop the oldest record.

        False when close() began while this caller waited: its record is dropped
        (counted), since the listener may have stopped reading.
        """
        if self.overflow == "block" and self._wait_for_room():
            if not self.closed:
                return True
            self.count_drop("closed", CLOSED_DROP)
            return False
        # The oldest record goes.  Older requests (a flush() or close() waiting) and the
        # listener's sentinel are not records: they go back, at the tail.
        kept: list[Any] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if is_record(item):
                self.count_drop("queue_full", "the queue is full; dropping the oldest records")
                break
            kept.append(item)
        for item in kept:
            self.queue.put(item)
        return True

    def _wait_for_room(self) -> bool:
        """overflow='block': wait up to ``block_timeout`` for the listener to catch up
        (or for close() to begin)."""
        deadline = time.monotonic() + self.block_timeout
        while self.queue.qsize() >= self.max_size and not self.closed:
            if time.monotonic() >= deadline or library_thread.active:
                return False
            time.sleep(0.001)
        return True

    def drain(self) -> list[Any]:
        """Everything still queued (records, requests, the sentinel), oldest first."""
        items: list[Any] = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return items
