"""The wire: one HTTP post to PostHog's AI batch route.

The handler never creates a ``posthog.Client``: a client registers its own
``atexit`` hook after ``logging.shutdown`` and stops its consumer threads
before our handler is flushed, which lost every buffered event in a trial.
Nor does it borrow the ``posthog`` package's private HTTP session: a release
that renamed it would make every request fail.  :class:`Transport` owns a
pooled keep-alive ``requests`` adapter sized to the number of sender threads
(its pool may be shared between threads), made anew in a forked child, whose
parent's connections are not its to use.  From ``posthog`` it
takes only the public user agent.

Requests go straight to a ``requests`` ``HTTPAdapter`` with a request prepared
once per transport (:class:`_Route`): ``Session.post`` merges settings,
cookies, hooks and the environment for every call, half of the CPU of a
request.  What the environment says (proxies and ``NO_PROXY``, a CA bundle in
``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``) is read as ``requests`` reads it,
once per process; redirects are not followed (PostHog's capture routes do not
redirect, and ``requests`` would turn a redirected POST into a GET anyway).

Events arrive here encoded already (:mod:`.encoding`); a request body is the
encoded events joined.  This module makes single attempts: when to retry is
the sender's business (:mod:`.congestion`), and so is halving a batch on 413
(:mod:`.exporter`).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import requests
from posthog import request as posthog_request
from requests.adapters import HTTPAdapter

from ._version import __version__
from .encoding import EncodedEvent

#: PostHog's AI capture route (what posthog-node and the Mastra exporter use).
AI_BATCH_PATH = "/i/v0/ai/batch/"
#: Statuses worth another try: the server or a proxy may recover.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PAYLOAD_TOO_LARGE = 413
NOT_FOUND = 404
#: zlib's fastest level.  On varied English text (2.3 KB generation events,
#: 200 to a body) level 6 cost 60 µs of CPU per event here, more than mapping
#: and encoding it together, for a body 3.3x smaller; level 1 cost 19 µs for
#: 2.7x (20 % more bytes on the wire).  The caller's CPU is worth more.
GZIP_LEVEL = 1
USER_AGENT = f"posthog-logging/{__version__} {posthog_request.USER_AGENT}"


def encode_body(api_key: str, batch: Sequence[EncodedEvent], *, gzip: bool) -> bytes:
    """The request body PostHog's batch routes take, optionally gzip-compressed
    (at :data:`GZIP_LEVEL`)."""
    sent_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    head = f'{{"api_key":{json.dumps(api_key)},"sent_at":"{sent_at}","batch":['
    raw = (head + ",".join(batch) + "]}").encode("ascii")
    return gzip_compress(raw) if gzip else raw


def gzip_compress(raw: bytes, level: int = GZIP_LEVEL) -> bytes:
    """``raw`` in the gzip format (``Content-Encoding: gzip``), at ``level``."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(raw) + compressor.flush()


@dataclass(frozen=True)
class PostResult:
    """What one HTTP post came back with (``status`` None: no response at all)."""

    status: int | None
    detail: str = ""
    retry_after: float | None = None
    body_bytes: int = 0
    #: The URL posted to (named in the report of a 404: a typo in the host's path).
    url: str = ""

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
        if self.status == NOT_FOUND and self.url:
            status += f" from {self.url} (is the host right?)"
        return f"{status}: {self.detail}" if self.detail else status


class Transport:
    """Posts encoded batches to ``{host}/i/v0/ai/batch/``; never raises, never shows the key.

    Thread-safe: several senders post at once over one pool of up to
    ``connections`` kept-alive connections.
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
        self.url = self.host + AI_BATCH_PATH
        self.gzip = gzip
        self.timeout = timeout
        self.connections = connections
        self._route_lock = threading.Lock()
        self._route: _Route | None = None
        self._route_pid = 0

    def __repr__(self) -> str:
        return f"<Transport host={self.host!r}>"

    def post(self, batch: Sequence[EncodedEvent], timeout: float | None = None) -> PostResult:
        """One attempt to deliver ``batch``."""
        body = encode_body(self._api_key, batch, gzip=self.gzip)
        try:
            response = self.route().send(body, self.timeout if timeout is None else timeout)
        except requests.RequestException as error:
            return PostResult(None, type(error).__name__, body_bytes=len(body))
        except Exception as error:  # a transport bug must not kill the listener
            return PostResult(None, self._redact(f"{type(error).__name__}: {error}"))
        detail = "" if response.ok else self._redact(response.text.strip())[:200]
        return PostResult(
            response.status_code, detail, _retry_after(response), len(body), self._redact(self.url)
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def route(self) -> _Route:
        """This process's pooled route: made on first use, and again after a fork."""
        route, pid = self._route, os.getpid()
        if route is not None and self._route_pid == pid:
            return route
        with self._route_lock:
            if self._route is None or self._route_pid != pid:
                self._route = _Route(self.url, self.connections, gzip=self.gzip)
                self._route_pid = pid
            return self._route

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's route and a lock one of its
        threads may have held at the fork (the child makes a route of its own)."""
        self._route_lock = threading.Lock()
        self._route = None

    def close(self) -> None:
        """Close this process's kept-alive connections (a later post opens new ones)."""
        with self._route_lock:
            route, self._route = self._route, None
            if route is not None and self._route_pid == os.getpid():
                route.adapter.close()


class _Route:
    """The way to one URL: a pool of up to ``connections`` kept-alive connections,
    a prepared POST to copy, and the environment's proxies and CA bundle."""

    def __init__(self, url: str, connections: int, *, gzip: bool) -> None:
        self.adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        self.request = requests.Request("POST", url, headers=headers).prepare()
        self.proxies = requests.utils.get_environ_proxies(url)
        self.verify: bool | str = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )

    def send(self, body: bytes, timeout: float) -> requests.Response:
        """POST ``body``; the response is read in full, so its connection goes back
        to the pool."""
        request = self.request.copy()
        request.prepare_body(body, None)
        response = self.adapter.send(
            request, timeout=timeout, verify=self.verify, proxies=self.proxies
        )
        _ = response.content
        return response


def _retry_after(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return float(header)
    except ValueError:
        return None
