"""The wire: event encoding and one HTTP post to PostHog's AI batch route.

The handler never creates a ``posthog.Client``: a client registers its own
``atexit`` hook after ``logging.shutdown`` and stops its consumer threads
before our handler is flushed, which lost every buffered event in a trial.
Nor does it borrow the ``posthog`` package's private HTTP session: a release
that renamed it would make every request fail.  :class:`Transport` owns a
pooled keep-alive ``requests.Session`` sized to the number of sender threads
(``requests`` sessions may be shared between threads), made anew in a forked
child, whose parent's connections are not its to use.  From ``posthog`` it
takes only the public user agent.

Events are encoded to JSON once, as soon as they are built (on the listener
thread, or on whichever thread does its work: the closing thread aborting the
open spans, the caller's when no listener could start, replay's): the encoded
size is what the memory bound and PostHog's size limits are about, and a
request body is then just the encoded events joined.  :class:`Transport` makes
single attempts; :class:`RetryPolicy` says which failures are worth another
and how long to wait (backoff, ``Retry-After``), and the sender (and replay)
schedules the retries it allows.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from posthog import request as posthog_request
from requests.adapters import HTTPAdapter

from ._version import __version__

#: PostHog's AI capture route (what posthog-node and the Mastra exporter use).
AI_BATCH_PATH = "/i/v0/ai/batch/"
#: Statuses worth another try: the server or a proxy may recover.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PAYLOAD_TOO_LARGE = 413
GZIP_LEVEL = 6
USER_AGENT = f"posthog-logging/{__version__} {posthog_request.USER_AGENT}"

#: An event as JSON text, ready to be joined into a request body.
EncodedEvent = str
#: PostHog's AI ingestion path accepts events up to 8 MB; keep clear of it.
MAX_EVENT_BYTES = 7_900_000
#: Appended to a property cut to make its event fit.
TRUNCATION_MARKER = "…[truncated {cut} chars by posthog-logging]"


def encode_event(event: dict[str, Any]) -> EncodedEvent:
    """JSON text of one event.

    Events are JSON-safe already (the mapping made them so), which lets the C
    encoder do all the work; the ``posthog`` client's own encoder walks every
    value in Python first, which is slow on large prompts.  ASCII escapes keep
    even lone surrogates from user strings valid JSON.
    """
    return json.dumps(event, separators=(",", ":"), default=str)


def fit_event(event: dict[str, Any], max_bytes: int) -> tuple[EncodedEvent, int]:
    """Encode ``event`` so it fits ``max_bytes``; returns the text and how many
    properties had to be truncated (0 when it fitted as it was).

    PostHog's AI route refuses events over 8 MB, and one refused event fails
    its whole request.  The largest properties (prompt and response content,
    as a rule) are cut first, each replaced by the start of its JSON text and
    a marker saying how much was cut, so the event still arrives and shows.
    """
    encoded = encode_event(event)
    if len(encoded) <= max_bytes:
        return encoded, 0
    properties = dict(event.get("properties") or {})
    sizes = sorted(
        ((len(encode_event(value)), key) for key, value in properties.items()), reverse=True
    )
    excess = len(encoded) - max_bytes
    truncated = 0
    for size, key in sizes:
        if excess <= 0:
            break
        text = (
            properties[key] if isinstance(properties[key], str) else encode_event(properties[key])
        )
        keep = max(0, len(text) - excess - len(TRUNCATION_MARKER) - 32)
        properties[key] = text[:keep] + TRUNCATION_MARKER.format(cut=len(text) - keep)
        excess -= size - len(encode_event(properties[key]))
        truncated += 1
    return encode_event({**event, "properties": properties}), truncated


def encode_body(api_key: str, batch: Sequence[EncodedEvent], *, gzip: bool) -> bytes:
    """The request body PostHog's batch routes take, optionally gzip-compressed.

    Level 6 gzip costs a fraction of level 9 for nearly the same size.
    """
    sent_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    head = f'{{"api_key":{json.dumps(api_key)},"sent_at":"{sent_at}","batch":['
    raw = (head + ",".join(batch) + "]}").encode("ascii")
    if not gzip:
        return raw
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(raw) + compressor.flush()


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


@dataclass(frozen=True)
class PostResult:
    """What one HTTP post came back with (``status`` None: no response at all)."""

    status: int | None
    detail: str = ""
    retry_after: float | None = None
    body_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES

    @property
    def too_large(self) -> bool:
        return self.status == PAYLOAD_TOO_LARGE

    def describe(self) -> str:
        status = "no response" if self.status is None else f"HTTP {self.status}"
        return f"{status}: {self.detail}" if self.detail else status


class Transport:
    """Posts encoded batches to ``{host}/i/v0/ai/batch/``; never raises, never shows the key.

    Thread-safe: several senders post at once over one pooled session of up
    to ``connections`` kept-alive connections.
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        gzip: bool = True,
        timeout: float = 10.0,
        connections: int = 1,
    ) -> None:
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.gzip = gzip
        self.timeout = timeout
        self.connections = connections
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._session_pid = 0

    def __repr__(self) -> str:
        return f"<Transport host={self.host!r}>"

    def post(self, batch: Sequence[EncodedEvent], timeout: float | None = None) -> PostResult:
        """One attempt to deliver ``batch``."""
        body = encode_body(self._api_key, batch, gzip=self.gzip)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            response = self.session().post(
                self.host + AI_BATCH_PATH,
                data=body,
                headers=headers,
                timeout=self.timeout if timeout is None else timeout,
            )
        except requests.RequestException as error:
            return PostResult(None, type(error).__name__, body_bytes=len(body))
        except Exception as error:  # a transport bug must not kill the listener
            return PostResult(None, self._redact(f"{type(error).__name__}: {error}"))
        detail = "" if response.ok else self._redact(response.text.strip())[:200]
        return PostResult(response.status_code, detail, _retry_after(response), len(body))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def session(self) -> requests.Session:
        """This process's pooled session: made on first use, and again after a fork."""
        session, pid = self._session, os.getpid()
        if session is not None and self._session_pid == pid:
            return session
        with self._session_lock:
            if self._session is None or self._session_pid != pid:
                self._session = _pooled_session(self.connections)
                self._session_pid = pid
            return self._session

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's session and a lock one of its
        threads may have held at the fork (the child makes a session of its own)."""
        self._session_lock = threading.Lock()
        self._session = None

    def close(self) -> None:
        """Close this process's kept-alive connections (a later post opens new ones)."""
        with self._session_lock:
            session, self._session = self._session, None
            if session is not None and self._session_pid == os.getpid():
                session.close()


def _pooled_session(connections: int) -> requests.Session:
    """A session keeping up to ``connections`` connections alive, retrying nothing itself."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _retry_after(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return float(header)
    except ValueError:
        return None
