"""Builders shared by several test modules (fixtures live in conftest.py).

Test modules import these from here, never from one another, so each test
module can be run, moved or deleted on its own.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from posthog_logging import PosthogLogHandler
from posthog_logging.contract import SpanEvent
from posthog_logging.devserver import CaptureServer, render_trace_tree
from posthog_logging.mapping import Event, EventMapper, MappingOptions, RecordRejected
from posthog_logging.sampling import fnv1a_32

from .conftest import DUMMY_KEY, span_logger

#: How long a test waits for what takes milliseconds on an idle machine.  Generous on
#: purpose: only a hang (a deadline ignored, a lost wake-up) runs into it, never a
#: slow or loaded machine.  Tests state properties as orders and counts; a bound that
#: must separate a right answer from a wrong one makes the wrong one take longer than
#: this (e.g. request_timeout=600), so no test races the clock.
PATIENCE = 60.0

#: Trace of the mapper-level span builders below.
TRACE = "a" * 32
ROOT = "1" * 16
NOW_MS = 1_735_689_660_000  # 2025-01-01T00:01:00Z
#: Trace of :func:`tool_span`, the span the handler-level tests log.
TOOL_TRACE = "b" * 32


def mapper(compat: bool = False, **options: Any) -> EventMapper:
    """A mapper that keeps rejected aborts to itself."""
    rejected: list[RecordRejected] = []
    return EventMapper(MappingOptions(mastra_compat=compat, **options), rejected.append)


def span(span_id: str, **fields: Any) -> dict[str, Any]:
    """A complete non-root generic span of :data:`TRACE`, 2.5 s long."""
    base: dict[str, Any] = {
        "id": span_id,
        "traceId": TRACE,
        "name": f"span {span_id}",
        "type": "generic",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:02.500Z",
        "isEvent": False,
        "isRootSpan": False,
    }
    base.update(fields)
    return base


def root(**fields: Any) -> dict[str, Any]:
    return span(ROOT, type="agent_run", isRootSpan=True, **fields)


def generation(**attributes: Any) -> dict[str, Any]:
    return span("2" * 16, type="model_generation", parentSpanId=ROOT, attributes=attributes)


def run(m: EventMapper, *steps: tuple[str, dict[str, Any]]) -> list[Event]:
    """Feed ``(span_event, span)`` steps to ``m``; every event they produce."""
    events: list[Event] = []
    for span_event, payload in steps:
        events.extend(m.map_span(payload, SpanEvent(span_event), NOW_MS))
    return events


def tool_span(n: int, **fields: Any) -> dict[str, Any]:
    """The ``n``-th ended tool call of :data:`TOOL_TRACE` (span id ``n`` in hex)."""
    tool: dict[str, Any] = {
        "id": f"{n:016x}",
        "traceId": TOOL_TRACE,
        "parentSpanId": "f" * 16,
        "name": f"tool {n}",
        "type": "tool_call",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:01.000Z",
        "metadata": {"userId": "u"},
    }
    tool.update(fields)
    return tool


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_emails(value: Any) -> Any:
    """A typical ``mask``: e-mail addresses out of every string, at any depth."""
    if isinstance(value, str):
        return _EMAIL.sub("<email>", value)
    if isinstance(value, list):
        return [scrub_emails(item) for item in value]
    if isinstance(value, dict):
        return {key: scrub_emails(item) for key, item in value.items()}
    return value


def label_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """A typical ``before_send``: drop feedback, label everything else."""
    if event["event"] == "$ai_feedback":
        return None
    event["properties"]["labelled_by"] = "before_send"
    return event


def dead_url() -> str:
    """An address where nothing listens (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def wait_until(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.005)


def returns_in_time(call: Callable[[], object], timeout: float = PATIENCE) -> None:
    """``call()`` on a daemon thread; fail if it has not returned after ``timeout`` seconds.

    For a call whose bug is to hang (a deadline ignored): the bug fails the test
    instead of hanging the run.  An exception the call raised is raised here.
    """
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # handed to the test's thread
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} had not returned after {timeout} s"
    if raised:
        raise raised[0]


def stack_of(thread: threading.Thread) -> list[FrameType]:
    """The frames ``thread`` is running now, innermost first (empty once it ended)."""
    frame = sys._current_frames().get(thread.ident or -1)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def waiting_inside(thread: threading.Thread, function: Callable[..., Any]) -> bool:
    """Whether ``thread`` is inside a call of ``function`` (at any depth) and waits
    there on an event or condition (its innermost frame is ``threading``'s)."""
    frames = stack_of(thread)
    return (
        bool(frames)
        and frames[0].f_code.co_filename == threading.__file__
        and any(frame.f_code is function.__code__ for frame in frames)
    )


def blocked_in(thread: threading.Thread, function: Callable[..., Any]) -> bool:
    """Whether ``thread`` waits (on a lock, event or condition: ``threading``'s own
    code, or a sleep) in a call made by ``function``, and runs nothing else.

    Tests use it to know, without a timed sleep, that another thread reached a
    point where it can only wait.
    """
    frames = stack_of(thread)
    for depth, frame in enumerate(frames):
        if frame.f_code is function.__code__:
            return all(inner.f_code.co_filename == threading.__file__ for inner in frames[:depth])
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str, deadline: float) -> bytes:
    """GET ``url``, retrying connection errors until ``deadline`` (the server is booting)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: bytes = response.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def handler_for(url: str, name: str, **kwargs: Any) -> tuple[PosthogLogHandler, logging.Logger]:
    kwargs.setdefault("api_key", DUMMY_KEY)
    handler = PosthogLogHandler(host=url, **kwargs)
    return handler, span_logger(f"test.reliability.{name}", handler)


def span_ids(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["properties"]["$ai_span_id"] for event in events)


def posthog_token_buckets(props: Mapping[str, Any]) -> dict[str, int]:
    """PostHog's input pricing, written out (ingestion's ``calculateInputCost``).

    The flag: an explicit boolean ``$ai_cache_reporting_exclusive`` wins; else
    exclusive when the provider is ``anthropic`` or the model mentions anthropic
    or starts with ``claude``.  Anthropic-style pricing: uncached = input (exclusive)
    or input - cache read - cache write, plus cache reads and writes at their own
    rates.  Everyone else: uncached = input (exclusive) or input - cache read,
    plus cache reads; cache writes are not priced apart (they are input).
    """
    provider = str(props.get("$ai_provider") or "").lower()
    model = str(props.get("$ai_model") or "").lower()
    anthropic_style = provider == "anthropic" or "anthropic" in model or model.startswith("claude")
    explicit = props.get("$ai_cache_reporting_exclusive")
    exclusive = explicit if isinstance(explicit, bool) else anthropic_style
    tokens = int(props.get("$ai_input_tokens") or 0)
    read = int(props.get("$ai_cache_read_input_tokens") or 0)
    write = int(props.get("$ai_cache_creation_input_tokens") or 0)
    if anthropic_style:
        uncached = tokens if exclusive else tokens - read - write
        return {"uncached": uncached, "cache_read": read, "cache_write": write}
    uncached = tokens if exclusive else tokens - read
    return {"uncached": uncached, "cache_read": read, "cache_write": 0}


# Programs run in a real subprocess against a capture server.  They are written
# to files (not ``python -c``) because ``spawn`` and ``forkserver`` children import
# the main module again by its path.
#: The logging configuration of every program.  The batch size and interval are larger
#: than anything a test logs, so every event arrives only through the handler's flush
#: at exit: nothing reaches the server by luck.
CONFIG_CODE = """
import logging, logging.config, os, sys

CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "posthog": {
            "()": "posthog_logging.PosthogLogHandler",
            "host": os.environ["TEST_HOST"],
            "flush_at": 100_000,
            "flush_interval": 600.0,
        },
    },
    "loggers": {"app": {"handlers": ["posthog"], "level": "INFO"}},
}
"""

#: What the programs log, through whatever handler the configuration put on ``app``.
SPAN_CODE = '''
log = logging.getLogger("app.ai")


def span(i):
    return {
        "id": f"{i:016x}", "traceId": f"{i // 100:032x}", "parentSpanId": "f" * 16,
        "name": f"tool {i}", "type": "tool_call",
        "startTime": 1735689600.0, "endTime": 1735689601.5,
        "input": {"i": i}, "metadata": {"userId": "u1"},
    }


def work(first, count):
    """Log spans first .. first + count - 1; returns how many."""
    for i in range(first, first + count):
        log.info("tool", extra={"span": span(i)})
    return count


def posthog_handler():
    return logging.getLogger("app").handlers[0]
'''


def write_program(
    directory: Path, body: str, name: str = "program.py", *, configure: bool = True
) -> Path:
    """A module in ``directory``: the configuration (applied at import, as a new user
    writes it, unless ``configure`` is false), the span helpers, then ``body``."""
    path = directory / name
    apply = "logging.config.dictConfig(CONFIG)\n" if configure else ""
    path.write_text(CONFIG_CODE + apply + SPAN_CODE + body)
    return path


def program_env(server: CaptureServer, directory: Path | None = None) -> dict[str, str]:
    """The environment for a program: the key, the capture server, ``directory`` importable."""
    env = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, TEST_HOST=server.url)
    if directory is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH")]))
    return env


def run_program(
    server: CaptureServer, path: Path, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``path`` with this interpreter; a hang fails the test after ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable, str(path)],
        env=program_env(server, path.parent),
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def delivered_span_ids(server: CaptureServer, expected: int, timeout: float = 10) -> list[int]:
    """The span ids the server received (sorted, duplicates kept) once ``expected`` arrived."""
    events = server.wait_for_events(expected, timeout=timeout)
    return sorted(int(event["properties"]["$ai_span_id"], 16) for event in events)


def trace_sample_position(trace_id: str) -> float:
    """The SDKs' rule written out: FNV-1a-32 of the trace id's UTF-8 bytes / 2**32.

    The sampler compares the hash with an integer threshold instead; these tests
    check it against this plain form of the rule.
    """
    return fnv1a_32(trace_id.encode("utf-8")) / 2**32


# ------------------------------------------------------------------ examples
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(
    server: CaptureServer, name: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, POSTHOG_HOST=server.url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result


def tree(server: CaptureServer) -> str:
    return render_trace_tree(server.events)


def named(server: CaptureServer, event: str) -> dict[str, dict[str, Any]]:
    return {
        e["properties"].get("$ai_span_name", ""): e["properties"]
        for e in server.events
        if e["event"] == event
    }
