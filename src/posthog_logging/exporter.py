"""How a batch is delivered, behind a two-method protocol (OpenTelemetry's exporter split).

The :class:`~.sender.Sender` decides *when* a batch goes; an :class:`Exporter`
decides *how*: :meth:`~Exporter.export` makes one attempt at a batch and says
how far it got, :meth:`~Exporter.shutdown` stops it for good.
:class:`HttpExporter` is the real one (HTTP through the
:class:`~.transport.Transport`, halving a batch on 413); the tests plug in an
in-memory one, so most sender tests need no socket and no real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from .congestion import RetryPolicy
from .encoding import EncodedEvent
from .stats import Stats
from .transport import PostResult, Transport

#: The outcome of a request that was not made because the sender stopped.
NOT_SENT = PostResult(None, "not sent: the handler was closed")


class Outcome(NamedTuple):
    """What one attempt at a batch (halved on 413 as needed) came to."""

    #: Events from the head of the batch that PostHog accepted.
    delivered: int
    #: Events after those that failed with ``failure`` (the rest were not tried).
    failed: int
    failure: PostResult | None


class Exporter(Protocol):
    """Delivers batches of encoded events; thread-safe."""

    def export(self, events: list[EncodedEvent], timeout: float | None = None) -> Outcome:
        """One attempt at ``events``, answered within ``timeout`` seconds when given."""
        ...

    def shutdown(self) -> None:
        """No new request leaves from now on (a batch being halved stops too)."""
        ...


class HttpExporter:
    """Posts batches to PostHog, halving one on 413 until the halves go through.

    The sender's threads and ``replay`` post through it, so both halve the same
    way and count ``requests`` and ``bytes`` the same way.
    """

    def __init__(self, transport: Transport, stats: Stats) -> None:
        self.transport = transport
        self.stats = stats
        #: Set by :meth:`shutdown`: no new request leaves.
        self.stopped = False

    def export(self, events: list[EncodedEvent], timeout: float | None = None) -> Outcome:
        """One attempt at ``events``, halving on 413 until the halves go through.

        Once shut down, no new request leaves, not even the next half of a batch
        in flight: its events stay with the sender, to be kept or counted.
        """
        if self.stopped:
            return Outcome(0, 0, NOT_SENT)
        if timeout is not None:
            timeout = min(self.transport.timeout, timeout)
        result = self.transport.post(events, timeout)
        self.stats.add("requests")
        self.stats.add("bytes", result.body_bytes)
        if result.ok:
            return Outcome(len(events), 0, None)
        if result.too_large and len(events) > 1:
            middle = len(events) // 2
            head = self.export(events[:middle], timeout)
            if head.failure is not None:
                return head
            tail = self.export(events[middle:], timeout)
            return Outcome(head.delivered + tail.delivered, tail.failed, tail.failure)
        return Outcome(0, len(events), result)

    def shutdown(self) -> None:
        self.stopped = True


def deliver(
    exporter: Exporter,
    events: list[EncodedEvent],
    retry: RetryPolicy,
    stats: Stats,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Export ``events`` now, waiting out the backoff (or ``Retry-After``) between
    tries on this thread: for ``replay`` and the journal's resume, which send a
    file in order, one request at a time (so each failure is a round of its own)."""
    delivered, attempts = 0, 0
    while True:
        outcome = exporter.export(events[delivered:])
        delivered += outcome.delivered
        failure = outcome.failure
        if failure is None:
            return Outcome(delivered, 0, None)
        attempts += 1
        if failure is NOT_SENT or not retry.should_retry(failure, attempts):
            return Outcome(delivered, outcome.failed, failure)
        stats.add("retried")
        sleep(retry.delay(attempts, failure.retry_after))
