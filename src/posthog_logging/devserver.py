"""A local PostHog-compatible capture endpoint, for development and tests.

``posthog-logging dev-server`` runs it and prints each trace as a tree as its
events arrive, so a machine with no PostHog account still shows what the
handler sends.  The test suite uses the same class over real HTTP, and its
fault injection (scripted statuses, ``Retry-After``, delays, dropped
connections, a body-size limit answered with 413) is how the reliability
tests reach the failure paths without mocking the transport.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from .values import time_ms

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ReceivedRequest:
    """One POST as the server saw it."""

    index: int
    path: str
    headers: dict[str, str]
    gzipped: bool
    body_bytes: int
    api_key: str | None
    batch: list[dict[str, Any]]
    status: int


@dataclass
class ScriptedResponse:
    """How to answer one upcoming POST (fault injection, consumed in order)."""

    status: int = 200
    body: str = '{"status": 1}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop_connection: bool = False


class _CaptureHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    capture: CaptureServer


class _CaptureRequestHandler(BaseHTTPRequestHandler):
    server: _CaptureHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._answer(200, "posthog-logging dev server: POST batches to /i/v0/ai/batch/\n", {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        capture = self.server.capture
        scripted = capture._next_script()
        if scripted.delay:
            time.sleep(scripted.delay)
        if scripted.drop_connection:
            self.close_connection = True
            self.connection.close()
            return
        status, body, headers = scripted.status, scripted.body, scripted.headers
        if capture.max_body_bytes is not None and len(raw) > capture.max_body_bytes:
            status, body, headers = 413, '{"detail": "payload too large"}', {}
        gzipped = raw[:2] == GZIP_MAGIC or self.headers.get("Content-Encoding") == "gzip"
        api_key, batch, parsed = _parse_body(raw, gzipped)
        if not parsed and status == 200:
            status, body = 400, '{"detail": "body is not JSON"}'
        capture._record(
            self.path, dict(self.headers.items()), gzipped, len(raw), api_key, batch, status
        )
        self._answer(status, body, headers)

    def _answer(self, status: int, body: str, headers: Mapping[str, str]) -> None:
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.capture.verbose:
            super().log_message(format, *args)


def _parse_body(raw: bytes, gzipped: bool) -> tuple[str | None, list[dict[str, Any]], bool]:
    try:
        text = gzip.decompress(raw) if gzipped else raw
        document = json.loads(text)
    except (OSError, EOFError, zlib.error, ValueError):
        return None, [], False
    if isinstance(document, list):
        return None, [event for event in document if isinstance(event, dict)], True
    if isinstance(document, dict):
        batch = document.get("batch")
        events = batch if isinstance(batch, list) else [document]
        api_key = document.get("api_key")
        return (api_key if isinstance(api_key, str) else None), events, True
    return None, [], False


class CaptureServer:
    """Accepts PostHog batch requests on 127.0.0.1 and keeps what it received."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_body_bytes: int | None = None,
        on_request: Callable[[ReceivedRequest], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.on_request = on_request
        self.verbose = verbose
        self._lock = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._script: deque[ScriptedResponse] = deque()
        self._server: _CaptureHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CaptureServer:
        server = _CaptureHTTPServer((self.host, self.port), _CaptureRequestHandler)
        server.capture = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="posthog-logging-devserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *responses: ScriptedResponse) -> None:
        """Answer the next POSTs with these responses, in order; then 200 again."""
        with self._lock:
            self._script.extend(responses)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of accepted (2xx) requests, in order of receipt."""
        with self._lock:
            return list(self._events)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` events were accepted or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._events) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            return list(self._events)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._events.clear()
            self._script.clear()

    def _next_script(self) -> ScriptedResponse:
        with self._lock:
            return self._script.popleft() if self._script else ScriptedResponse()

    def _record(
        self,
        path: str,
        headers: dict[str, str],
        gzipped: bool,
        body_bytes: int,
        api_key: str | None,
        batch: list[dict[str, Any]],
        status: int,
    ) -> None:
        with self._lock:
            request = ReceivedRequest(
                len(self._requests), path, headers, gzipped, body_bytes, api_key, batch, status
            )
            self._requests.append(request)
            if 200 <= status < 300:
                self._events.extend(batch)
            self._lock.notify_all()
        if self.on_request is not None:
            self.on_request(request)


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
    if kind == "generation":
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
        error = props.get("error_message")
        if error is None and isinstance(props.get("$ai_error"), Mapping):
            error = props["$ai_error"].get("message")
        parts.append(f"ERROR {error}")
    return "  ".join(part for part in parts if part)


def _start_ms(event: Mapping[str, Any]) -> float:
    """When the span started: its timestamp (the end) minus its latency."""
    end = time_ms(event.get("timestamp")) or 0
    latency = _properties(event).get("$ai_latency")
    return end - (latency * 1000 if isinstance(latency, (int, float)) else 0)


def render_trace_tree(events: Sequence[Mapping[str, Any]]) -> str:
    """One trace's events as an indented tree (parents from ``$ai_parent_id``)."""
    if not events:
        return ""
    trace_id = str(_properties(events[0]).get("$ai_trace_id", "?"))
    root = next((event for event in events if event.get("event") == "$ai_trace"), None)
    by_id = {node: event for event in events if (node := _node_id(event)) is not None}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for event in events:
        if event is root:
            continue
        parent = _properties(event).get("$ai_parent_id")
        parent_key = str(parent) if parent is not None else None
        if parent_key not in by_id or event.get("event") == "$ai_feedback":
            parent_key = trace_id if root is not None else None
        children.setdefault(parent_key, []).append(event)
    for siblings in children.values():
        siblings.sort(key=_start_ms)

    lines = [f"trace {trace_id}"]

    def walk(event: Mapping[str, Any], prefix: str, last: bool) -> None:
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_describe(event)}")
        kids = children.get(_node_id(event), [])
        for index, kid in enumerate(kids):
            walk(kid, prefix + ("    " if last else "│   "), index == len(kids) - 1)

    tops = [root] if root is not None else children.get(None, [])
    for index, top in enumerate(tops):
        walk(top, "", index == len(tops) - 1)
    return "\n".join(lines)


class TracePrinter:
    """Prints each trace's tree once it looks complete, and again if it grows."""

    def __init__(self, out: TextIO, idle_seconds: float = 2.0) -> None:
        self.out = out
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._events: dict[str, list[Mapping[str, Any]]] = {}
        self._last_seen: dict[str, float] = {}
        self._printed: dict[str, int] = {}
        self._complete: set[str] = set()

    def on_request(self, request: ReceivedRequest) -> None:
        if not 200 <= request.status < 300:
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


def serve_forever(host: str, port: int, out: TextIO, *, verbose: bool = False) -> None:
    """Run the dev server until interrupted, printing trace trees to ``out``."""
    printer = TracePrinter(out)
    server = CaptureServer(host, port, on_request=printer.on_request, verbose=verbose)
    server.start()
    out.write(f"posthog-logging dev server listening on {server.url}  (set POSTHOG_HOST to this)\n")
    out.flush()
    try:
        while True:
            time.sleep(0.5)
            printer.print_ready()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
