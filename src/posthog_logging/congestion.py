"""Congestion control: how many requests may be in flight, and when the next may leave.

Pure bookkeeping, no threads and no I/O: the :class:`~.sender.Sender` asks it
before taking a batch and tells it every answer; the clock is passed in, so its
rules are unit tested in milliseconds (``tests/test_sender_units.py``).

The rules, as TCP's: a 429, 5xx or no answer halves the requests allowed in
flight (down to one) and pauses every sender for the longer of the server's
``Retry-After`` and the backoff; the backoff grows once per *round* of
failures (requests refused together count once); each success of a request
sent since the latest failure allows one more request again and ends the
round.  The :class:`RetryPolicy` says which failures get another try and how
long the backoff is; ``replay`` uses it too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .transport import PostResult


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in tries and in delay."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def should_retry(self, failure: PostResult, attempts: int) -> bool:
        """Whether a batch whose ``attempts``-th try failed with ``failure`` gets another."""
        return failure.retryable and attempts < self.max_attempts

    def delay(self, failures: int, retry_after: float | None) -> float:
        """Seconds to wait after ``failures`` consecutive failed tries (from 1): the
        jittered backoff, or the server's ``Retry-After`` (up to ``max_retry_after``)
        when that is longer."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (failures - 1)))
        backoff = random.uniform(ceiling / 2, ceiling)
        if retry_after is None:
            return backoff
        return max(backoff, min(max(retry_after, 0.0), self.max_retry_after))


class CongestionControl:
    """The request limit and the pause, from the answers so far."""

    def __init__(self, max_in_flight: int, retry: RetryPolicy, clock: Callable[[], float]) -> None:
        self.max_in_flight = max_in_flight
        self.retry = retry
        self._clock = clock
        #: Requests allowed in flight now: halved by failures, grown by successes.
        self.limit = max_in_flight
        #: Consecutive failed rounds: the backoff's exponent.
        self.failures = 0
        self._backed_off_at = float("-inf")  # when the latest round failed
        self.paused_until = 0.0

    def pause_left(self) -> float:
        """Seconds until requests may leave again (0 or less: they may now)."""
        return self.paused_until - self._clock()

    def may_send(self, in_flight: int) -> bool:
        """Whether one more request may leave now, with ``in_flight`` out already."""
        return self.pause_left() <= 0 and in_flight < self.limit

    @property
    def backing_off(self) -> bool:
        """Whether the latest answers were failures no success has ended yet."""
        return self.failures > 0

    def succeeded(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` was accepted: one more may be in flight.

        An answer to a request sent before the latest failure says nothing about
        the server now, and ends no round.
        """
        if sent_at >= self._backed_off_at:
            self.failures = 0
            self.limit = min(self.max_in_flight, self.limit + 1)

    def failed(self, failure: PostResult, sent_at: float) -> None:
        """A request sent at ``sent_at`` failed in a way the server may recover from:
        fewer requests at once, and none for a while.

        Each failure halves the limit, but the backoff grows once per round: the
        failures of requests sent before the latest back-off belong to the round
        it paid for already (four requests refused at once pause the senders as
        one would, not as four in a row).
        """
        self.limit = max(1, self.limit // 2)
        if sent_at >= self._backed_off_at:
            self.failures += 1
            self._backed_off_at = self._clock()
        delay = self.retry.delay(self.failures, failure.retry_after)
        self.paused_until = max(self.paused_until, self._clock() + delay)
