"""A local PostHog-compatible capture endpoint, for development and tests.

``posthog-logging dev-server`` runs it and prints each trace as a tree as its
events arrive, so a machine with no PostHog account still shows what the
handler sends.  The test suite uses the same class over real HTTP, and its
fault injection (scripted statuses, ``Retry-After``, delays, hung requests,
dropped connections, a body-size limit answered with 413) is how the
reliability tests reach the failure paths without mocking the transport.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from .values import time_ms

GZIP_MAGIC = b"\x1f\x8b"

#: ``ReceivedRequest.status`` of a request whose connection was closed unanswered.
DROPPED = 0

#: The answer of a POST when nothing is scripted (PostHog's own success body).
ACCEPTED_BODY = '{"status": 1}'


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


@dataclass
class ScriptedResponse:
    """How to answer one upcoming POST (fault injection, consumed in order).

    ``delay`` holds the answer that much longer than the server's ``latency``;
    ``hang`` never answers: the request is recorded (as ``DROPPED``) and its
    connection held open until the server stops.  A 429 storm is
    ``script(*[ScriptedResponse(429, headers={"Retry-After": "1"})] * n)``; a
    server that hangs on every request is ``answer_by_default(ScriptedResponse(hang=True))``.
    """

    status: int = 200
    body: str = ACCEPTED_BODY
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop_connection: bool = False
    hang: bool = False


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
        self._answer(
            200,
            "posthog-logging dev server: POST batches to /i/v0/ai/batch/\n",
            {},
            content_type="text/plain; charset=utf-8",
        )

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
        status, body, headers = _verdict(scripted, len(raw), parsed, capture.max_body_bytes)
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
        body: str,
        headers: Mapping[str, str],
        content_type: str = "application/json",
    ) -> None:
        payload = body.encode()
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


def _verdict(
    scripted: ScriptedResponse, body_bytes: int, parsed: bool, max_body_bytes: int | None
) -> tuple[int, str, Mapping[str, str]]:
    """Status, body and headers of the answer to one POST.

    A dropped connection has no answer at all.  Otherwise the size limit wins
    (PostHog refuses an oversize body whatever it holds), then an injected
    error status, then a body that cannot be read.
    """
    if scripted.drop_connection or scripted.hang:
        return DROPPED, "", {}
    if max_body_bytes is not None and body_bytes > max_body_bytes:
        return 413, '{"detail": "payload too large"}', {}
    if 200 <= scripted.status < 300 and not parsed:
        return 400, '{"detail": "body is not JSON"}', {}
    return scripted.status, scripted.body, scripted.headers


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
    POSTs received and not yet answered.
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
    ) -> None:
        self.host = host
        self.port = port
        self.latency = check_latency(latency)
        self.max_body_bytes = max_body_bytes
        self.on_request = on_request
        self.verbose = verbose
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


# --------------------------------------------------------------- trace trees


def group_by_trace(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Events keyed by ``$ai_trace_id``, in order of first appearance."""
    traces: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        trace_id = str(_properties(event).get("$ai_trace_id", "?"))
        traces.setdefault(trace_id, []).append(event)
    return traces


def _properties(event: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = event.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _node_id(event: Mapping[str, Any]) -> str | None:
    props = _properties(event)
    if event.get("event") == "$ai_trace":
        return str(props.get("$ai_trace_id"))
    node = props.get("$ai_span_id") or props.get("$ai_generation_id")
    return None if node is None else str(node)


def _describe(event: Mapping[str, Any]) -> str:
    props = _properties(event)
    kind = str(event.get("event", "?")).removeprefix("$ai_")
    parts = [kind]
    if kind == "feedback":
        parts.append(repr(props.get("$ai_feedback_text")))
    else:
        parts.append(str(props.get("$ai_span_name", "")))
    if kind in ("generation", "embedding"):
        parts.append(f"[{props.get('$ai_model')}]")
    latency = props.get("$ai_latency")
    if isinstance(latency, (int, float)):
        parts.append(f"{latency:.3f}s")
    first_token = props.get("$ai_time_to_first_token")
    if isinstance(first_token, (int, float)):
        parts.append(f"ttft {first_token:.3f}s")
    tokens_in, tokens_out = props.get("$ai_input_tokens"), props.get("$ai_output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(
            f"tokens {tokens_in if tokens_in is not None else '-'}/"
            f"{tokens_out if tokens_out is not None else '-'}"
        )
    if props.get("$ai_is_error"):
        parts.append(f"ERROR {_error_message(props)}".rstrip())
    return "  ".join(part for part in parts if part)


def _error_message(props: Mapping[str, Any]) -> str:
    """``error_message`` (non-root spans), else ``$ai_error.message`` (root events)."""
    message = props.get("error_message")
    error = props.get("$ai_error")
    if message is None and isinstance(error, Mapping):
        message = error.get("message")
    return "" if message is None else str(message)


def _start_ms(event: Mapping[str, Any]) -> float:
    """When the span started: its timestamp (the end) minus its latency."""
    end = time_ms(event.get("timestamp")) or 0
    latency = _properties(event).get("$ai_latency")
    return end - (latency * 1000 if isinstance(latency, (int, float)) else 0)


def _parent_key(event: Mapping[str, Any], known: set[str], top: str | None) -> str | None:
    """The node an event hangs under: its ``$ai_parent_id`` if that is in the trace, else ``top``.

    Feedback belongs to the trace as a whole, so it always goes to ``top``.
    """
    parent = _properties(event).get("$ai_parent_id")
    if parent is None or str(parent) not in known or event.get("event") == "$ai_feedback":
        return top
    return str(parent)


def render_trace_tree(events: Sequence[Mapping[str, Any]]) -> str:
    """One trace's events as an indented tree (parents from ``$ai_parent_id``).

    Siblings appear in order of start (``timestamp`` is when a span ended, so
    the start is that minus ``$ai_latency``), as a trace viewer lists them.
    Events whose parents form a cycle are drawn after the tree: every event is
    always shown exactly once.
    """
    if not events:
        return ""
    trace_id = str(_properties(events[0]).get("$ai_trace_id", "?"))
    root = next((event for event in events if event.get("event") == "$ai_trace"), None)
    known = {node for event in events if (node := _node_id(event)) is not None}
    top = trace_id if root is not None else None
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for event in events:
        if event is not root:
            children.setdefault(_parent_key(event, known, top), []).append(event)
    for siblings in children.values():
        siblings.sort(key=_start_ms)

    lines = [f"trace {trace_id}"]
    shown: set[int] = set()  # id() of each drawn event

    def walk(event: Mapping[str, Any], prefix: str, last: bool) -> None:
        shown.add(id(event))
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_describe(event)}")
        node = _node_id(event)
        kids = [kid for kid in children.get(node, []) if id(kid) not in shown] if node else []
        for index, kid in enumerate(kids):
            walk(kid, prefix + ("    " if last else "│   "), index == len(kids) - 1)

    tops = [root] if root is not None else children.get(None, [])
    for index, event in enumerate(tops):
        walk(event, "", index == len(tops) - 1)
    for event in events:
        if id(event) not in shown:
            walk(event, "", True)
    return "\n".join(lines)


class TracePrinter:
    """Prints each trace's tree once it looks complete, and again if it grows.

    A trace arrives over several batches and its ``$ai_trace`` root ends last,
    so the root's arrival marks it complete.  A trace without one (its root was
    an event span, or never ended) is printed once ``idle_seconds`` pass
    without a new event for it; ``print_ready`` must be called periodically
    for that.
    """

    def __init__(self, out: TextIO, idle_seconds: float = 2.0) -> None:
        self.out = out
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._events: dict[str, list[Mapping[str, Any]]] = {}
        self._last_seen: dict[str, float] = {}
        self._printed: dict[str, int] = {}
        self._complete: set[str] = set()

    def on_request(self, request: ReceivedRequest) -> None:
        if not request.accepted:
            return
        with self._lock:
            for trace_id, events in group_by_trace(request.batch).items():
                self._events.setdefault(trace_id, []).extend(events)
                self._last_seen[trace_id] = time.monotonic()
                if any(event.get("event") == "$ai_trace" for event in events):
                    self._complete.add(trace_id)
        self.print_ready()

    def print_ready(self) -> None:
        """Print the trees that are complete or idle and changed since last printed."""
        now = time.monotonic()
        with self._lock:
            for trace_id, events in self._events.items():
                ready = trace_id in self._complete
                ready = ready or now - self._last_seen[trace_id] >= self.idle_seconds
                if ready and self._printed.get(trace_id) != len(events):
                    self._printed[trace_id] = len(events)
                    self.out.write(render_trace_tree(events) + "\n\n")
                    self.out.flush()


def serve_forever(
    host: str, port: int, out: TextIO, *, verbose: bool = False, latency: float = 0.0
) -> None:
    """Run the dev server until interrupted, printing trace trees to ``out``."""
    printer = TracePrinter(out)
    with CaptureServer(
        host, port, on_request=printer.on_request, verbose=verbose, latency=latency
    ) as server:
        answers = f", answering after {latency * 1000:g} ms" if latency else ""
        out.write(
            f"posthog-logging dev server listening on {server.url}{answers}"
            "  (set POSTHOG_HOST to this)\n"
        )
        out.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(0.5)
                printer.print_ready()
