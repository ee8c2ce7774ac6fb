"""Delivery of event batches with the ``posthog`` package's HTTP transport.

The handler never creates a ``posthog.Client``: a client registers its own
``atexit`` hook after ``logging.shutdown`` and stops its consumer threads
before our handler is flushed, which lost every buffered event in a trial.
Instead the listener thread calls :func:`posthog.request.post` itself, so the
order of draining at exit is ours.  This module adds what a one-shot post
lacks: retries with backoff, ``Retry-After``, splitting on 413, and deadlines.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from posthog import request as posthog_request

from ._version import __version__
from .contract import DIAGNOSTICS_LOGGER

#: PostHog's AI capture route (what posthog-node and the Mastra exporter use).
AI_BATCH_PATH = "/i/v0/ai/batch/"
#: Statuses worth another try: the server or a proxy may recover.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PAYLOAD_TOO_LARGE = 413
GZIP_LEVEL = 6
USER_AGENT = f"posthog-logging/{__version__} {posthog_request.USER_AGENT}"

_log = logging.getLogger(DIAGNOSTICS_LOGGER)

Event = dict[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in tries and in delay."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class SendOutcome:
    """What became of one batch: delivered and undeliverable events, retries made."""

    delivered: int = 0
    retries: int = 0
    failed: list[Event] = field(default_factory=list)
    #: Why the failed events failed, e.g. "HTTP 400: ..." or "deadline".
    reasons: list[str] = field(default_factory=list)


class _Attempt:
    """The result of one HTTP post."""

    def __init__(self, status: int | None, detail: str, retry_after: float | None) -> None:
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES


class Transport:
    """Posts batches to ``{host}/i/v0/ai/batch/``; never raises, never logs the key.

    ``wait`` is how the transport sleeps between tries and ``shutdown_deadline``
    tells it when the handler must be done: the handler passes a wait that
    returns early once it is closing, so a backoff or a long ``Retry-After``
    never holds up shutdown beyond its deadline.
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        gzip: bool = True,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        wait: Callable[[float], object] = time.sleep,
        shutdown_deadline: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.gzip = gzip
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._wait = wait
        self._shutdown_deadline = shutdown_deadline
        #: Bytes put on the wire so far (after gzip), for stats.
        self.bytes_sent = 0

    def __repr__(self) -> str:
        return f"<Transport host={self.host!r}>"

    def send(self, batch: Sequence[Event], deadline: float | None = None) -> SendOutcome:
        """Deliver ``batch``, retrying transient faults until ``deadline`` (monotonic)."""
        outcome = SendOutcome()
        self._send(list(batch), deadline, outcome)
        return outcome

    def _send(self, batch: list[Event], deadline: float | None, outcome: SendOutcome) -> None:
        attempt_number = 0
        while True:
            attempt_number += 1
            deadline = _earliest(deadline, self._shutdown_deadline())
            attempt = self._post(batch, self._timeout_until(deadline))
            if attempt.ok:
                outcome.delivered += len(batch)
                return
            if attempt.status == PAYLOAD_TOO_LARGE and len(batch) > 1:
                middle = len(batch) // 2
                self._send(batch[:middle], deadline, outcome)
                self._send(batch[middle:], deadline, outcome)
                return
            reason = self._describe(attempt)
            if not attempt.retryable or attempt_number >= self.retry.max_attempts:
                self._fail(batch, reason, outcome)
                return
            delay = self.retry.delay(attempt_number, attempt.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                self._fail(batch, f"deadline reached after {reason}", outcome)
                return
            outcome.retries += 1
            self._wait(delay)

    def _timeout_until(self, deadline: float | None) -> float:
        if deadline is None:
            return self.timeout
        return max(0.05, min(self.timeout, deadline - time.monotonic()))

    @staticmethod
    def _fail(batch: list[Event], reason: str, outcome: SendOutcome) -> None:
        outcome.failed.extend(batch)
        outcome.reasons.append(reason)

    def _describe(self, attempt: _Attempt) -> str:
        status = "no response" if attempt.status is None else f"HTTP {attempt.status}"
        detail = attempt.detail.replace(self._api_key, "[redacted]")[:200]
        return f"{status}: {detail}" if detail else status

    def _post(self, batch: list[Event], timeout: float) -> _Attempt:
        body = encode_body(self._api_key, batch, gzip=self.gzip)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            response = _session().post(
                self.host + AI_BATCH_PATH, data=body, headers=headers, timeout=timeout
            )
        except requests.RequestException as error:
            return _Attempt(None, type(error).__name__, None)
        except Exception as error:  # a transport bug must not kill the listener
            return _Attempt(None, f"{type(error).__name__}: {error}", None)
        self.bytes_sent += len(body)
        return _Attempt(response.status_code, response.text.strip(), _retry_after(response))


def encode_body(api_key: str, batch: list[Event], *, gzip: bool) -> bytes:
    """The request body PostHog's batch routes take, JSON then optionally gzip.

    Events are JSON-safe already (the mapping made them so), which lets the C
    encoder do all the work; the ``posthog`` client's own encoder walks every
    value in Python first, which is slow on large prompts.  Level 6 gzip costs
    a fraction of level 9 for nearly the same size.
    """
    sent_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    document = {"api_key": api_key, "batch": batch, "sent_at": sent_at}
    # ASCII escapes keep even lone surrogates from user strings valid JSON.
    raw = json.dumps(document, separators=(",", ":"), default=str).encode("ascii")
    if not gzip:
        return raw
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(raw) + compressor.flush()


def _session() -> requests.Session:
    """The ``posthog`` package's pooled HTTP session (keep-alive, its socket options)."""
    get_session = getattr(posthog_request, "_get_session", None)
    if get_session is not None:
        session: requests.Session = get_session()
        return session
    return _fallback_session


_fallback_session = requests.Session()


def _earliest(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    return first if second is None else min(first, second)


def _retry_after(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return float(header)
    except ValueError:
        return None
