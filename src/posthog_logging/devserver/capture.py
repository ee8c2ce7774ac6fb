"""The capture server: a local PostHog-compatible batch endpoint over real HTTP.

It records every POST (gzip or not), answers it as PostHog would, or as a test
scripted (:mod:`.faults`), and hands each request to an observer
(``on_request``): the dev server's trace printer and viewer, or a test.  GET
requests go to an optional page source (the web viewer); without one, GET is a
health check.

``latency`` stands in for the network: localhost answers in microseconds and
hides the cost of a round trip, which is what decides throughput over a real
link.  Each request thread waits on its own, so requests in flight at once
overlap as they do on a real connection pool, and ``max_in_flight`` shows how
many a client really had outstanding.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import socket
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol

from .faults import DROPPED, ScriptedResponse, verdict

GZIP_MAGIC = b"\x1f\x8b"


class Page(NamedTuple):
    """The answer to a GET."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = {}


class PageSource(Protocol):
    """What answers the capture server's GET requests (the web viewer)."""

    def get(self, target: str) -> Page:
        """The answer for a request target (path and query)."""
        ...


#: The answer to every GET when the server has no page source.
HEALTH_PAGE = Page(
    200,
    b"posthog-logging dev server: POST batches to /i/v0/ai/batch/\n",
    "text/plain; charset=utf-8",
)


@dataclass
class ReceivedRequest:
    """One POST as the server saw it, rejected ones included."""

    index: int
    path: str
    headers: dict[str, str]
    gzipped: bool
    body_bytes: int
    api_key: str | None
    batch: list[dict[str, Any]]
    status: int  # DROPPED when the connection was closed without an answer
    #: When the body had arrived (``time.time()``).
    received_at: float = 0.0
    #: POSTs in flight when this one arrived, itself included.
    in_flight: int = 1

    @property
    def accepted(self) -> bool:
        """Whether PostHog would have ingested the batch (a 2xx answer)."""
        return 200 <= self.status < 300


class _CaptureHTTPServer(ThreadingHTTPServer):
    """The socket server: knows its open connections so that stopping ends them too.

    HTTP/1.1 keep-alive connections outlive ``shutdown()``; without closing them a
    client holding a pooled connection would still be answered by a stopped server.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], capture: CaptureServer) -> None:
        super().__init__(address, _CaptureRequestHandler)
        self.capture = capture
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A late answer to a client that gave up (its timeout) or on a connection
        # this server ended (drop, stop) breaks the pipe: expected under fault
        # injection, so not printed.
        if self.capture.verbose or not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _CaptureRequestHandler(BaseHTTPRequestHandler):
    server: _CaptureHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        pages = self.server.capture.pages
        page = HEALTH_PAGE if pages is None else pages.get(self.path)
        self._answer(page.status, page.body, page.headers, page.content_type)

    def do_POST(self) -> None:
        capture = self.server.capture
        in_flight = capture._arrive()
        try:
            self._receive_and_answer(capture, in_flight)
        finally:
            capture._leave()

    def _receive_and_answer(self, capture: CaptureServer, in_flight: int) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received_at, arrived = time.time(), time.monotonic()
        scripted = capture._next_script()
        encoding = self.headers.get("Content-Encoding", "")
        gzipped = raw[:2] == GZIP_MAGIC or encoding.strip().lower() == "gzip"
        api_key, batch, parsed = _parse_body(raw, gzipped)
        status, body, headers = verdict(scripted, len(raw), parsed, capture.max_body_bytes)
        if scripted.hang:
            # Recorded on arrival, as it is never answered: the connection stays
            # open, unanswered, until the server stops.
            request = capture._record(
                self.path, self.headers, gzipped, raw, api_key, batch, received_at, in_flight
            )
            if capture.on_request is not None:
                capture.on_request(request)
            capture._wait_until_stopped(None)
            self.close_connection = True
            return
        # Parsing counts as part of the round trip: the answer leaves
        # ``latency + delay`` after the body arrived, whatever the parsing took.
        capture._wait_until_stopped(arrived + capture.latency + scripted.delay - time.monotonic())
        request = capture._record(
            self.path, self.headers, gzipped, raw, api_key, batch, received_at, in_flight, status
        )
        try:
            if scripted.drop_connection:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._answer(status, body, headers)
        finally:
            # After the answer, so that a slow observer never delays the client.
            if capture.on_request is not None:
                capture.on_request(request)

    def _answer(
        self,
        status: int,
        body: str | bytes,
        headers: Mapping[str, str],
        content_type: str = "application/json",
    ) -> None:
        payload = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.capture.verbose:
            super().log_message(format, *args)


def _parse_body(raw: bytes, gzipped: bool) -> tuple[str | None, list[dict[str, Any]], bool]:
    """``(api_key, events, parsed)`` of a batch body, a bare list or a single event."""
    try:
        document = json.loads(gzip.decompress(raw) if gzipped else raw)
    except (OSError, EOFError, zlib.error, ValueError):
        return None, [], False
    api_key: Any = None
    if isinstance(document, dict):
        api_key = document.get("api_key")
        batch = document.get("batch")
        document = batch if isinstance(batch, list) else [document]
    if not isinstance(document, list):
        return None, [], False
    events = [event for event in document if isinstance(event, dict)]
    return (api_key if isinstance(api_key, str) else None), events, True


def check_latency(latency: float) -> float:
    """``latency`` if it is a usable number of seconds (finite, not negative)."""
    if isinstance(latency, bool) or not isinstance(latency, (int, float)):
        raise TypeError(f"latency must be a number of seconds, not {latency!r}")
    if not math.isfinite(latency) or latency < 0:
        raise ValueError(f"latency must be finite and >= 0 seconds, not {latency!r}")
    return float(latency)


class CaptureServer:
    """Accepts PostHog batch requests over HTTP and keeps what it received.

    Every POST is recorded (``requests``), whatever the answer; only the events
    of accepted requests count as delivered (``events``), exactly as PostHog
    drops a batch it answered with an error.  Binds 127.0.0.1 and a free port
    by default, so parallel tests never collide.

    Each POST is answered ``latency`` seconds after its body arrived (plus any
    scripted ``delay``); every connection has its own thread, so concurrent
    requests wait side by side.  ``in_flight`` and ``max_in_flight`` count the
    POSTs received and not yet answered.  GET requests are answered by
    ``pages`` (the web viewer) when given.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_body_bytes: int | None = None,
        on_request: Callable[[ReceivedRequest], None] | None = None,
        verbose: bool = False,
        latency: float = 0.0,
        pages: PageSource | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = check_latency(latency)
        self.max_body_bytes = max_body_bytes
        self.on_request = on_request
        self.verbose = verbose
        self.pages = pages
        # Set by stop(): ends the waits of latency, delays and hung requests.
        self._stopped = threading.Event()
        # Guards everything below; notified whenever a request is recorded, arrives or leaves.
        self._changed = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._script: deque[ScriptedResponse] = deque()
        self._default = ScriptedResponse()
        self._in_flight = 0
        self._max_in_flight = 0
        self._server: _CaptureHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CaptureServer:
        """Bind (``port`` 0 picks a free one) and serve in a daemon thread."""
        server = _CaptureHTTPServer((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._stopped.clear()
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="posthog-logging-devserver",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        server, self._server = self._server, None
        self._stopped.set()
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *responses: ScriptedResponse) -> None:
        """Answer the next POSTs with these responses, in order; then accept again."""
        with self._changed:
            self._script.extend(responses)

    def answer_by_default(self, response: ScriptedResponse | None) -> None:
        """Answer every POST with nothing scripted with ``response`` (None: accept again)."""
        with self._changed:
            self._default = response or ScriptedResponse()

    @property
    def in_flight(self) -> int:
        """POSTs received and not yet answered, now."""
        with self._changed:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most POSTs that were in flight at once (since start or ``clear()``)."""
        with self._changed:
            return self._max_in_flight

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every POST so far, in order of receipt."""
        with self._changed:
            return list(self._requests)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of accepted (2xx) requests, in order of receipt."""
        with self._changed:
            return list(self._events)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The accepted events once there are ``count``, or whatever arrived by ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) >= count, timeout)
            return list(self._events)

    def wait_for_in_flight(self, count: int, timeout: float = 10.0) -> int:
        """The number of POSTs in flight once it is ``count``, or whatever it is at ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == count, timeout)
            return self._in_flight

    def clear(self) -> None:
        """Forget requests, events, unconsumed scripted responses and the in-flight peak.

        The default answer stays; the peak restarts from the requests in flight now.
        """
        with self._changed:
            self._requests.clear()
            self._events.clear()
            self._script.clear()
            self._max_in_flight = self._in_flight

    def _next_script(self) -> ScriptedResponse:
        with self._changed:
            return self._script.popleft() if self._script else self._default

    def _arrive(self) -> int:
        """Count a POST in flight; the number in flight, this one included."""
        with self._changed:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._changed.notify_all()
            return self._in_flight

    def _leave(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _wait_until_stopped(self, timeout: float | None) -> None:
        """Wait ``timeout`` seconds (None: for ever), or less if the server stops."""
        if timeout is None or timeout > 0:
            self._stopped.wait(timeout)

    def _record(
        self,
        path: str,
        headers: Message,
        gzipped: bool,
        raw: bytes,
        api_key: str | None,
        batch: list[dict[str, Any]],
        received_at: float,
        in_flight: int,
        status: int = DROPPED,
    ) -> ReceivedRequest:
        with self._changed:
            request = ReceivedRequest(
                len(self._requests),
                path,
                dict(headers.items()),
                gzipped,
                len(raw),
                api_key,
                batch,
                status,
                received_at,
                in_flight,
            )
            self._requests.append(request)
            if request.accepted:
                self._events.extend(batch)
            self._changed.notify_all()
        return request
