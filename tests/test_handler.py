"""PosthogLogHandler: configuration, zero-config, batching, flush, bad input."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import io
import json
import logging
import logging.config
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer, ScriptedResponse
from posthog_logging.handler import DISABLED_WARNING
from posthog_logging.lifecycle import Lifecycle

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .helpers import PATIENCE, TOOL_TRACE, blocked_in, returns_in_time, tool_span, wait_until

TRACE = TOOL_TRACE  # the trace of tool_span()


@pytest.fixture
def make_handler(capture_server: CaptureServer) -> Any:
    handlers: list[PosthogLogHandler] = []

    def make(**kwargs: Any) -> tuple[PosthogLogHandler, logging.Logger]:
        kwargs.setdefault("api_key", DUMMY_KEY)
        kwargs.setdefault("host", capture_server.url)
        handler = PosthogLogHandler(**kwargs)
        handlers.append(handler)
        return handler, span_logger(f"test.handler.{len(handlers)}", handler)

    yield make
    for handler in handlers:
        handler.close()


# ------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"flush_at": 0}, ValueError),
        ({"flush_at": 2.5}, TypeError),
        ({"flush_at": True}, TypeError),
        ({"flush_interval": -1}, ValueError),
        ({"flush_interval": float("inf")}, ValueError),
        ({"flush_interval": "10"}, TypeError),
        ({"privacy_mode": "yes"}, TypeError),
        ({"mastra_compat": 1}, TypeError),
        ({"host": "us.i.posthog.com"}, ValueError),
        ({"host": 42}, TypeError),
        ({"api_key": 123}, TypeError),
        ({"default_distinct_id": 5}, TypeError),
        ({"max_queue_size": 0}, ValueError),
        ({"shutdown_timeout": 0}, ValueError),
    ],
)
def test_bad_configuration_raises_clearly_without_the_key(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    kwargs.setdefault("api_key", DUMMY_KEY)
    with pytest.raises(error) as raised:
        PosthogLogHandler(
            host="http://127.0.0.1:9", **kwargs
        ) if "host" not in kwargs else PosthogLogHandler(**kwargs)
    assert DUMMY_KEY not in str(raised.value)
    assert next(iter(kwargs)) in str(raised.value)


def test_serverless_defaults_unless_given() -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host="http://127.0.0.1:9", serverless=True)
    assert (handler.settings.flush_at, handler.settings.flush_interval) == (10, 2.0)
    explicit = PosthogLogHandler(
        api_key=DUMMY_KEY, host="http://127.0.0.1:9", serverless=True, flush_at=3, flush_interval=7
    )
    assert (explicit.settings.flush_at, explicit.settings.flush_interval) == (3, 7.0)
    plain = PosthogLogHandler(api_key=DUMMY_KEY, host="http://127.0.0.1:9")
    assert (plain.settings.flush_at, plain.settings.flush_interval) == (20, 10.0)
    for h in (handler, explicit, plain):
        h.close()


def test_zero_config_reads_environment(
    monkeypatch: pytest.MonkeyPatch, capture_server: CaptureServer
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("POSTHOG_HOST", capture_server.url + "/")
    handler = PosthogLogHandler()
    assert not handler.disabled
    assert handler.settings.host == capture_server.url
    log = span_logger("test.zero_config", handler)
    log.info("x", extra={"span": tool_span(1)})
    handler.close()
    assert [r.api_key for r in capture_server.requests] == [DUMMY_KEY]


def test_default_host_is_us_cloud_with_an_info_note(
    monkeypatch: pytest.MonkeyPatch, library_logs: RecordCollector
) -> None:
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    handler = PosthogLogHandler(api_key=DUMMY_KEY)
    assert handler.settings.host == "https://us.i.posthog.com"
    notes = [r for r in library_logs.records if "eu.i.posthog.com" in r.getMessage()]
    assert [r.levelname for r in notes] == ["INFO"]
    handler.close()


@pytest.mark.parametrize("api_key", [None, ""])
def test_no_key_disables_with_exactly_one_warning(
    api_key: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capture_server: CaptureServer,
    library_logs: RecordCollector,
) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    handler = PosthogLogHandler(api_key=api_key, host=capture_server.url)
    log = span_logger("test.disabled", handler)
    for n in range(100):
        log.info("x", extra={"span": tool_span(n)})
        log.info("fb", extra={"feedback": {"traceId": TRACE, "value": 1}})
    handler.flush()
    handler.close()
    warnings = [r.getMessage() for r in library_logs.records if r.levelno >= logging.WARNING]
    assert warnings == [DISABLED_WARNING]
    assert "pass api_key to PosthogLogHandler" in DISABLED_WARNING  # the keyword, not apiKey
    assert capture_server.requests == []
    assert handler.stats()["received"] == 0 if "received" in handler.stats() else True
    assert handler.stats()["listener_alive"] is False


def test_key_never_in_repr_logs_or_errors(
    make_handler: Any, library_logs: RecordCollector, capture_server: CaptureServer
) -> None:
    capture_server.script(ScriptedResponse(status=400, body=f'{{"detail": "bad key {DUMMY_KEY}"}}'))
    handler, log = make_handler(flush_at=1)
    log.info("x", extra={"span": tool_span(1)})
    log.info("x", extra={"span": "not a span"})
    handler.flush()
    assert DUMMY_KEY not in repr(handler)
    assert DUMMY_KEY not in repr(handler.__dict__.get("_transport"))
    messages = [r.getMessage() for r in library_logs.records]
    assert any("HTTP 400" in m for m in messages)
    assert all(DUMMY_KEY not in m for m in messages)


# --------------------------------------------------------------- dictConfig


@pytest.mark.parametrize("form", ["()", "class"])
def test_dictconfig_builds_a_working_handler_without_a_start_call(
    form: str, capture_server: CaptureServer
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "ph": {
                    form: "posthog_logging.PosthogLogHandler",
                    "api_key": DUMMY_KEY,
                    "host": capture_server.url,
                    "flush_at": 2,
                    "privacy_mode": True,
                }
            },
            "loggers": {
                "test.dictconfig": {"handlers": ["ph"], "level": "INFO", "propagate": False}
            },
        }
    )
    logger = logging.getLogger("test.dictconfig")
    handler = logger.handlers[0]
    assert isinstance(handler, PosthogLogHandler)
    assert handler.settings.privacy_mode is True
    for n in range(4):
        logger.info("x", extra={"span": tool_span(n, input="secret")})
    events = capture_server.wait_for_events(4, timeout=PATIENCE)
    assert len(events) == 4
    assert [len(r.batch) for r in capture_server.requests] == [2, 2]
    assert all("$ai_input_state" not in e["properties"] for e in events)
    handler.close()
    logger.handlers.clear()


# -------------------------------------------------------- batching and flush


def test_timer_sends_partial_batches_every_flush_interval(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    _handler, log = make_handler(flush_at=100, flush_interval=0.2)
    log.info("x", extra={"span": tool_span(1)})
    assert len(capture_server.wait_for_events(1, timeout=PATIENCE)) == 1
    log.info("x", extra={"span": tool_span(2)})
    assert len(capture_server.wait_for_events(2, timeout=PATIENCE)) == 2
    assert [len(r.batch) for r in capture_server.requests] == [1, 1]


def test_flush_returns_after_everything_logged_before_is_sent(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(flush_at=1000, flush_interval=60)
    for n in range(250):
        log.info("x", extra={"span": tool_span(n)})
    handler.flush()
    assert len(capture_server.events) == 250
    # Nothing went before the flush (flush_at=1000), then all 250 in one request.
    assert [len(r.batch) for r in capture_server.requests] == [250]


def test_close_batches_like_the_spec_example(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(flush_at=4, flush_interval=60)
    for n in range(9):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    # Requests in flight at once may arrive in any order.
    assert sorted(len(r.batch) for r in capture_server.requests) == [1, 4, 4]


def test_records_after_close_are_dropped_and_counted(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler()
    handler.close()
    log.info("x", extra={"span": tool_span(1)})
    assert handler.stats()["dropped"] == {"closed": 1}
    assert capture_server.requests == []


def listener_held(
    make_handler: Any, **kwargs: Any
) -> tuple[PosthogLogHandler, logging.Logger, threading.Event]:
    """A handler whose listener is held mapping span 1 (in ``mask``) until the
    returned event is set."""
    entered, release = threading.Event(), threading.Event()

    def blocking_mask(value: Any) -> Any:
        entered.set()
        release.wait(PATIENCE)
        return value

    handler, log = make_handler(mask=blocking_mask, **kwargs)
    log.info("a", extra={"span": tool_span(1, input="q")})
    assert entered.wait(PATIENCE)
    return handler, log, release


def test_a_full_queue_drops_its_oldest_record_never_a_waiting_flush(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    # A flush() that lost its request would wait out its flush_timeout, past PATIENCE.
    handler, log, release = listener_held(
        make_handler, max_queue_size=2, flush_timeout=2 * PATIENCE, shutdown_timeout=2 * PATIENCE
    )
    flushed = threading.Event()

    def flush() -> None:
        handler.flush()
        flushed.set()

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    # The flush request is queued behind the blocked listener.
    wait_until(lambda: handler.stats()["queued"] >= 1, "the flush request to be queued")
    log.info("b", extra={"span": tool_span(2, input="q")})
    log.info("c", extra={"span": tool_span(3, input="q")})  # full: b goes, not the flush
    release.set()
    assert flushed.wait(PATIENCE), "flush() waited for its whole flush_timeout"
    flusher.join()
    handler.close()
    assert sorted(e["properties"]["$ai_span_id"] for e in capture_server.events) == [
        f"{1:016x}",
        f"{3:016x}",
    ]
    assert handler.stats()["dropped"] == {"queue_full": 1}


def _statement_end(function: Any, statement: str) -> int:
    """The last line of the statement of ``function`` that reads ``statement``.

    Statements are compared as ``ast.unparse`` prints their first line, so
    reformatting the handler (line breaks, comments, blank lines) moves nothing;
    a statement that is gone fails here, by name, rather than pausing nowhere.
    """
    lines, first = inspect.getsourcelines(function)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    (found,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and ast.unparse(node).splitlines()[0] == statement
    ]
    assert found.end_lineno is not None
    return first - 1 + found.end_lineno


def _pause_after(
    function: Any, statement: str, reached: threading.Event, go: threading.Event
) -> Any:
    """A trace function that holds its thread once ``statement`` of ``function`` ran
    (at the next line of that function that runs), so a test can interleave threads
    exactly; nothing is replaced."""
    code, end = function.__code__, _statement_end(function, statement)

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno > end and not reached.is_set():
            reached.set()
            go.wait(PATIENCE)
        return local

    def call(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return call


def test_close_is_not_held_up_when_a_full_queue_moves_its_request_to_the_tail(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    # A close() held up would wait out its shutdown_timeout, past PATIENCE.
    handler, log, release = listener_held(
        make_handler, max_queue_size=1, shutdown_timeout=2 * PATIENCE
    )
    gates = [(threading.Event(), threading.Event()) for _ in range(3)]

    def traced(
        target: Any, gate: tuple[threading.Event, threading.Event], where: tuple[Any, str]
    ) -> None:
        sys.settrace(_pause_after(where[0], where[1], *gate))
        try:
            target()
        finally:
            sys.settrace(None)

    # Two callers pass the closed check before close() begins, and hold there.
    callers = [
        threading.Thread(
            target=traced,
            args=(lambda n=n: log.info("b", extra={"span": tool_span(n)}), gates[n - 2]),
            kwargs={"where": (PosthogLogHandler.emit, "if records.closed:")},
        )
        for n in (2, 3)
    ]
    for caller, (reached, _go) in zip(callers, gates[:2], strict=True):
        caller.start()
        assert reached.wait(PATIENCE)
    # close() holds right after it queued its request.
    closer = threading.Thread(
        target=traced,
        args=(handler.close, gates[2]),
        kwargs={"where": (Lifecycle._hand_to_listener, "self.records.queue.put(request)")},
        daemon=True,  # should close() hang, the test fails, and the run still ends
    )
    closer.start()
    assert gates[2][0].wait(PATIENCE)
    gates[0][1].set()  # full: the request goes back, behind this caller's record
    callers[0].join(PATIENCE)
    gates[2][1].set()  # (before: the listener's sentinel now followed that record)
    wait_until(lambda: blocked_in(closer, Lifecycle._finish), "close() to wait for its request")
    gates[1][1].set()  # full: the request goes back again (before: behind the sentinel)
    callers[1].join(PATIENCE)
    release.set()
    closer.join(PATIENCE)
    assert not closer.is_alive(), "close() waited out its shutdown_timeout"
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{1:016x}"]
    assert handler.stats()["dropped"] == {"queue_full": 1, "closed": 1}


def test_caller_mutating_its_span_after_logging_changes_nothing(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(flush_at=1000)
    messages = [{"role": "user", "content": "hi"}]
    output = {"text": "first"}
    span = tool_span(1, input=messages, output=output, attributes={"k": "before"})
    log.info("x", extra={"span": span})
    messages.append({"role": "assistant", "content": "later"})
    output["text"] = "second"
    span["attributes"]["k"] = "after"
    span["metadata"]["userId"] = "someone else"
    span["name"] = "renamed"
    handler.flush()
    event = capture_server.events[0]
    props = event["properties"]
    assert props["$ai_input_state"] == [{"role": "user", "content": "hi"}]
    assert props["$ai_output_state"] == {"text": "first"}
    assert props["k"] == "before"
    assert props["$ai_span_name"] == "tool 1"
    assert event["distinct_id"] == "u"


def test_caller_mutating_feedback_or_a_posthog_event_after_logging_changes_nothing(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(flush_at=1000)
    metadata = {"sessionId": "s-1"}
    feedback = {"traceId": TRACE, "value": 1, "metadata": metadata}
    properties = {"$ai_trace_id": "t-1", "$ai_span_id": "s-1", "$ai_span_name": "before"}
    log.info("x", extra={"feedback": feedback})
    log.info("x", extra={"posthog_event": {"event": "$ai_span", "properties": properties}})
    metadata["sessionId"] = "s-2"
    properties["$ai_span_name"] = "after"
    handler.flush()
    by_name = {event["event"]: event["properties"] for event in capture_server.events}
    assert by_name["$ai_feedback"]["$ai_session_id"] == "s-1"
    assert by_name["$ai_span"]["$ai_span_name"] == "before"


def test_handler_filters_decide_what_is_sent(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler()
    handler.addFilter(lambda record: record.getMessage() != "skip")
    log.info("skip", extra={"span": tool_span(1)})
    log.info("keep", extra={"span": tool_span(2)})
    handler.flush()
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{2:016x}"]
    assert handler.stats()["received"] == 1


def test_a_subclass_overriding_filter_decides_what_is_sent(capture_server: CaptureServer) -> None:
    """``Handler.handle`` always asks ``self.filter()``: a subclass may override it
    instead of adding filters, as with any handler."""

    class Skipping(PosthogLogHandler):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.getMessage() != "skip"

    handler = Skipping(api_key=DUMMY_KEY, host=capture_server.url)
    log = span_logger("test.handler.subclass_filter", handler)
    try:
        log.info("skip", extra={"span": tool_span(1)})
        log.info("keep", extra={"span": tool_span(2)})
        handler.flush()
        assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{2:016x}"]
        assert handler.stats()["received"] == 1
    finally:
        handler.close()


def test_a_filter_may_hand_the_handler_another_record_from_python_3_12(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler()

    def rename(record: logging.LogRecord) -> logging.LogRecord:
        renamed = logging.makeLogRecord(record.__dict__)
        renamed.span = {**record.span, "name": "renamed by a filter"}  # type: ignore[attr-defined]
        return renamed

    handler.addFilter(rename)
    log.info("x", extra={"span": tool_span(1)})
    handler.flush()
    sent = capture_server.events[0]["properties"]["$ai_span_name"]
    # Before 3.12 a filter's return value only says yes or no, as for any handler.
    assert sent == ("renamed by a filter" if sys.version_info >= (3, 12) else "tool 1")


def test_span_objects_with_to_span_dict_are_accepted(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    class MySpan:
        def to_span_dict(self) -> dict[str, Any]:
            return tool_span(5)

    handler, log = make_handler()
    log.info("x", extra={"span": MySpan()})
    handler.flush()
    assert capture_server.events[0]["properties"]["$ai_span_id"] == f"{5:016x}"


def test_span_type_names_and_times_in_every_accepted_form(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler()
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    log.info(
        "x",
        extra={
            "span": tool_span(
                1, type="MODEL_GENERATION", startTime=start, endTime=start.timestamp() + 1.25
            )
        },
    )
    handler.flush()
    event = capture_server.events[0]
    assert event["event"] == "$ai_generation"
    assert event["properties"]["$ai_latency"] == 1.25
    assert event["timestamp"] == "2025-01-01T00:00:01.250Z"


# --------------------------------------------------------------- bad input


def test_bad_records_never_raise_and_are_counted(
    make_handler: Any, capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    handler, log = make_handler()
    logging.raiseExceptions = True
    log.info("bad", extra={"span": tool_span(3), "span_event": "span_exploded"})
    bad_spans: list[Any] = [
        42,
        "span",
        ["list"],
        {"id": "x"},
        {"traceId": TRACE},
        tool_span(1, startTime=None),
        tool_span(2, endTime="never"),
    ]
    for bad in bad_spans:
        log.info("bad", extra={"span": bad})
    log.info("bad", extra={"feedback": "not feedback"})
    log.info("plain record without span")
    log.info("good", extra={"span": tool_span(9)})
    handler.flush()
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{9:016x}"]
    stats = handler.stats()
    assert stats["dropped"] == {"invalid_span": 8, "invalid_feedback": 1}
    assert stats["ignored"] == 1
    assert stats["listener_alive"] is True
    errors = [r.getMessage() for r in library_logs.records if r.levelno >= logging.ERROR]
    assert errors[0] == "posthog: exporter error: unknown span_event 'span_exploded'"
    assert errors[1] == "posthog: exporter error: span is a int, not a mapping"
    assert len(errors) == 7  # five spans in full, one "counting only" note, the feedback


def test_spans_that_fail_while_read_are_dropped_counted_and_reported(
    make_handler: Any, capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    class Exploding(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    class Unreadable(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("no iterating me")

        def __len__(self) -> int:
            return 1

    handler, log = make_handler()
    log.info("x", extra={"span": Unreadable()})  # fails on the caller's thread
    log.info("x", extra={"span": tool_span(1, metadata={"bad": Exploding()})})  # on the listener
    log.info("x", extra={"span": tool_span(2)})
    handler.flush()
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{2:016x}"]
    stats = handler.stats()
    assert stats["listener_alive"] is True
    assert stats["dropped"] == {"emit_error": 1, "invalid_span": 1}
    messages = [r.getMessage() for r in library_logs.records if r.levelno >= logging.WARNING]
    assert any("could not be read" in m and "emit_error" in m for m in messages)
    assert any("could not be read (RuntimeError: boom)" in m for m in messages)


def test_handler_on_root_ignores_its_own_diagnostics(capture_server: CaptureServer) -> None:
    root = logging.getLogger()
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, flush_at=1)
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        stream = io.StringIO()
        for n in range(50):
            logging.getLogger("app").info("x", extra={"span": tool_span(n)})
        logging.getLogger("posthog").debug("transport chatter %s", stream)
        handler.flush()
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        handler.close()
    assert len(capture_server.events) == 50
    assert json.dumps(handler.stats()["dropped"]) == "{}"


def test_flush_has_a_deadline_when_the_server_hangs(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    # The request is never answered and would time out only after 600 s: flush() and
    # close() must return by their own deadlines, while it still hangs.
    capture_server.answer_by_default(ScriptedResponse(hang=True))
    handler, log = make_handler(flush_timeout=0.2, shutdown_timeout=0.3, request_timeout=600)
    log.info("x", extra={"span": tool_span(1)})
    returns_in_time(handler.flush)
    assert capture_server.wait_for_in_flight(1, timeout=PATIENCE) == 1
    returns_in_time(handler.close)
    assert capture_server.events == []
