"""Users control what is sent: mask=, before_send=, sample_rate= and the environment,
end to end through the real handler, transport and capture server."""

from __future__ import annotations

import json
import logging
import logging.config
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.cli import main as cli_main
from posthog_logging.config import PRIVACY_MODE_ENV, SAMPLE_RATE_ENV, SERVERLESS_ENV
from posthog_logging.contract import CONTENT_PROPERTIES
from posthog_logging.devserver import CaptureServer
from posthog_logging.sampling import SAMPLE_RATE_PROPERTY

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .helpers import PATIENCE, scrub_emails, tool_span, trace_sample_position

SECRET = "bob@example.com"


@pytest.fixture
def make_handler(capture_server: CaptureServer) -> Iterator[Any]:
    handlers: list[PosthogLogHandler] = []

    def make(**kwargs: Any) -> tuple[PosthogLogHandler, logging.Logger]:
        handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, **kwargs)
        handlers.append(handler)
        return handler, span_logger(f"test.sent.{len(handlers)}", handler)

    yield make
    for handler in handlers:
        handler.close()


def one_trace(log: logging.Logger, n: int = 0) -> str:
    """A trace with user content everywhere: root, generation with a tool call, a tool
    whose error fails the whole trace, feedback.  Returns its trace id."""
    agent = pl.span(f"agent {n}", type="agent_run", input=f"help {SECRET}", logger=log)
    with pytest.raises(RuntimeError), agent as root:
        with pl.generation("llm", model="m", provider="p", logger=log) as llm:
            llm.input = [{"role": "user", "content": f"write to {SECRET}"}]
            llm.output = {
                "text": "sending",
                "toolCalls": [{"toolCallId": "c1", "toolName": "mail", "args": {"to": SECRET}}],
            }
        root.output = f"told {SECRET}"
        with pl.span("mail", type="tool_call", logger=log) as tool:
            tool.input = {"to": SECRET}
            tool.output = f"no reply from {SECRET}"
            raise RuntimeError(f"mailbox {SECRET} is full")
    pl.feedback(root.trace_id, 1, comment=f"thanks, {SECRET}", logger=log)
    return root.trace_id


def test_mask_replaces_every_content_property_before_it_leaves(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(mask=scrub_emails)
    one_trace(log)
    handler.flush()
    events = capture_server.events
    assert Counter(e["event"] for e in events) == {
        "$ai_trace": 1,
        "$ai_generation": 1,
        "$ai_span": 1,
        "$ai_feedback": 1,
    }
    assert SECRET not in json.dumps(events)
    masked = {
        key
        for e in events
        for key, value in e["properties"].items()
        if key in CONTENT_PROPERTIES and "<email>" in json.dumps(value)
    }
    # This one trace carries every kind a span record can (instructions come from
    # the posthog.ai wrappers' events).
    # $ai_instructions and $ai_output come only in ready posthog_event records.
    assert masked == set(CONTENT_PROPERTIES) - {"$ai_instructions", "$ai_output"}


def test_without_mask_the_same_trace_carries_the_content(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler()
    one_trace(log)
    handler.flush()
    assert json.dumps(capture_server.events).count(SECRET) >= 7  # the test above means something


def test_mask_covers_embedding_input(make_handler: Any, capture_server: CaptureServer) -> None:
    handler, log = make_handler(mask=scrub_emails)
    with pl.embedding("embed", model="e", provider="p", input=f"find {SECRET}", logger=log):
        pass
    handler.flush()
    (embedding,) = [e for e in capture_server.events if e["event"] == "$ai_embedding"]
    assert embedding["properties"]["$ai_input"] == "find <email>"
    assert SECRET not in json.dumps(capture_server.events)


def test_before_send_changes_or_drops_the_batch_dict(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    seen: list[dict[str, Any]] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(json.loads(json.dumps(event)))
        if event["event"] == "$ai_feedback":
            return None
        event["properties"]["team"] = "search"
        event["distinct_id"] = "user-from-hook"
        return event

    handler, log = make_handler(before_send=before_send)
    one_trace(log)
    handler.flush()
    events = capture_server.events
    assert {tuple(sorted(e)) for e in seen} == {
        ("distinct_id", "event", "properties", "timestamp", "uuid")
    }
    assert sorted(e["uuid"] for e in events) == sorted(
        e["uuid"] for e in seen if e["event"] != "$ai_feedback"
    )
    assert all(e["properties"]["team"] == "search" for e in events)
    assert {e["distinct_id"] for e in events} == {"user-from-hook"}
    stats = handler.stats()
    assert stats["filtered_out"] == 1
    assert stats["dropped"] == {}
    assert stats["mapped"] == stats["sent"] + stats["filtered_out"]


def test_hooks_run_on_the_listener_thread_never_the_callers(make_handler: Any) -> None:
    calls: list[tuple[str, threading.Thread]] = []

    def mask(value: Any) -> Any:
        calls.append(("mask", threading.current_thread()))
        return value

    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(("before_send", threading.current_thread()))
        return event

    handler, log = make_handler(mask=mask, before_send=before_send)
    callers = [threading.current_thread(), threading.Thread(target=one_trace, args=(log, 1))]
    one_trace(log)
    callers[1].start()
    callers[1].join()
    handler.flush()
    # Both hooks ran, for the traces of both callers (4 events each) ...
    assert Counter(name for name, _ in calls)["before_send"] == 8
    assert {name for name, _ in calls} == {"mask", "before_send"}
    # ... all on one thread: the library's listener, which is neither caller nor a
    # sender, and ends with close().
    (listener,) = {thread for _, thread in calls}
    assert listener not in callers
    assert not listener.name.startswith("posthog-logging-sender")
    assert listener.is_alive()
    handler.close()
    listener.join(PATIENCE)
    assert not listener.is_alive()


def test_a_failing_hook_drops_only_its_events_counted_and_logged_once(
    make_handler: Any, capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    def mask(value: Any) -> Any:
        if "boom" in json.dumps(value):
            raise ValueError("mask cannot handle this")
        return value

    handler, log = make_handler(mask=mask)
    for n in range(5):
        with pl.span(f"ok {n}", input="fine", logger=log):
            pass
        with pl.span(f"bad {n}", input="boom", logger=log):
            pass
    handler.flush()
    stats = handler.stats()
    assert sorted(e["properties"]["$ai_span_name"] for e in capture_server.events) == sorted(
        f"ok {n}" for n in range(5)
    )
    assert stats["dropped"] == {"mask_error": 5}
    assert stats["listener_alive"] is True
    errors = library_logs.messages(logging.ERROR)
    assert len(errors) == 1 and "mask (on $ai_input_state) raised ValueError" in errors[0]


def test_privacy_mode_strips_content_before_mask_sees_it(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    seen: list[Any] = []

    def mask(value: Any) -> Any:
        seen.append(value)
        return scrub_emails(value)

    handler, log = make_handler(mask=mask, privacy_mode=True)
    one_trace(log)
    handler.flush()
    events = capture_server.events
    stripped = {"$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state"}
    assert not any(stripped & set(e["properties"]) for e in events)
    # The mask saw exactly the content privacy mode keeps (error messages and the
    # feedback text), each value once, and nothing it stripped: every value it was
    # handed is one that went out (masked), and every content value that went out
    # passed through it.
    kept = [
        (key, e["properties"][key])
        for e in events
        for key in CONTENT_PROPERTIES
        if key in e["properties"]
    ]
    assert {key for key, _ in kept} == {"$ai_error", "error_message", "$ai_feedback_text"}
    assert sorted(json.dumps(value) for _, value in kept) == sorted(
        json.dumps(scrub_emails(value)) for value in seen
    )
    assert all("mailbox" in json.dumps(v) or "thanks" in json.dumps(v) for v in seen)
    assert SECRET not in json.dumps(events)


def test_sampling_1000_traces_at_0_3_sends_exactly_the_traces_below_the_rate_complete(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    handler, log = make_handler(sample_rate=0.3, flush_at=100)
    traces = []
    for n in range(1000):
        with pl.span(f"agent {n}", type="agent_run", input="q", logger=log) as root:
            with pl.generation("llm", model="m", provider="p", input="q", logger=log) as llm:
                llm.output = "a"
            with pl.span("tool", type="tool_call", logger=log):
                pass
        pl.feedback(root.trace_id, 1, logger=log)
        traces.append(root.trace_id)
    handler.flush()
    expected = {trace for trace in traces if trace_sample_position(trace) < 0.3}
    by_trace: defaultdict[str, list[str]] = defaultdict(list)
    for event in capture_server.events:
        assert event["properties"][SAMPLE_RATE_PROPERTY] == 0.3
        by_trace[event["properties"]["$ai_trace_id"]].append(event["event"])
    assert set(by_trace) == expected
    complete = ["$ai_feedback", "$ai_generation", "$ai_span", "$ai_trace"]
    assert all(sorted(names) == complete for names in by_trace.values())
    stats = handler.stats()
    assert stats["sent"] == 4 * len(expected)
    assert stats["sampled_out"] == 4 * (1000 - len(expected))
    assert stats["dropped"] == {}
    # The trace ids are random: about 300 of 1,000 fall below 0.3, give or take 14.5
    # (binomial); five standard deviations either way, so only a broken rule fails.
    assert 227 < len(expected) < 373


def test_events_without_a_trace_id_are_kept_unmarked(
    make_handler: Any, capture_server: CaptureServer
) -> None:
    # Compat mode's metadata passthrough (applied last) can blank $ai_trace_id: such
    # events have no trace to be consistent with and are kept.  The rate is so small
    # that every event with a trace id is sampled out.
    handler, log = make_handler(sample_rate=1e-9, mastra_compat=True)
    for n in range(6):
        metadata = {"$ai_trace_id": None} if n % 2 else {}
        with pl.span(f"span {n}", metadata=metadata, logger=log):
            pass
    handler.flush()
    events = capture_server.events
    assert sorted(e["properties"]["$ai_span_name"] for e in events) == [
        "span 1",
        "span 3",
        "span 5",
    ]
    assert not any(SAMPLE_RATE_PROPERTY in e["properties"] for e in events)
    assert handler.stats()["sampled_out"] == 3


@pytest.mark.parametrize(("raw", "rate"), [("0.5", 0.5), ("1", None), ("", None)])
def test_sample_rate_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_handler: Any, raw: str, rate: float | None
) -> None:
    monkeypatch.setenv(SAMPLE_RATE_ENV, raw)
    handler, _ = make_handler()
    assert handler.settings.sample_rate == (1.0 if raw == "1" else rate)
    argument_wins, _ = make_handler(sample_rate=0.2)
    assert argument_wins.settings.sample_rate == 0.2


def test_privacy_mode_and_serverless_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_handler: Any, capture_server: CaptureServer
) -> None:
    monkeypatch.setenv(PRIVACY_MODE_ENV, "true")
    monkeypatch.setenv(SERVERLESS_ENV, "1")
    handler, log = make_handler()
    assert (handler.settings.privacy_mode, handler.settings.serverless) == (True, True)
    assert (handler.settings.flush_at, handler.settings.flush_interval) == (10, 2.0)
    with pl.span("s", input="secret prompt", logger=log):
        pass
    handler.flush()
    assert "secret prompt" not in json.dumps(capture_server.events)
    explicit, _ = make_handler(privacy_mode=False, serverless=False)
    assert (
        explicit.settings.privacy_mode,
        explicit.settings.serverless,
        explicit.settings.flush_at,
    ) == (False, False, 20)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        (SAMPLE_RATE_ENV, "1.5"),
        (SAMPLE_RATE_ENV, "ten percent"),
        (PRIVACY_MODE_ENV, "maybe"),
        (SERVERLESS_ENV, "2"),
    ],
)
def test_an_unreadable_variable_fails_at_configuration_naming_it(
    monkeypatch: pytest.MonkeyPatch, capture_server: CaptureServer, variable: str, raw: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=f"environment variable {variable}"):
        PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sample_rate": 0}, ValueError, r"sample_rate must be in \(0, 1\]"),
        ({"sample_rate": "0.1"}, TypeError, "sample_rate must be a number"),
        ({"mask": "no_such_module_abc:mask"}, ValueError, "mask: cannot import"),
        ({"before_send": 7}, TypeError, "before_send must be callable"),
    ],
)
def test_bad_arguments_fail_at_configuration(
    capture_server: CaptureServer, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, **kwargs)


def test_dictconfig_names_the_hooks_by_dotted_path(capture_server: CaptureServer) -> None:
    name = "test.sent.dictconfig"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "posthog": {
                    "()": "posthog_logging.PosthogLogHandler",
                    "api_key": DUMMY_KEY,
                    "host": capture_server.url,
                    "mask": "tests.helpers:scrub_emails",
                    "before_send": "tests.helpers.label_event",
                    "sample_rate": 1.0,
                }
            },
            "loggers": {name: {"handlers": ["posthog"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger(name)
    handler = log.handlers[0]
    try:
        one_trace(log)
        handler.flush()
    finally:
        handler.close()
        log.removeHandler(handler)
    events = capture_server.events
    assert len(events) == 3  # the feedback was dropped by before_send
    assert all(e["properties"]["labelled_by"] == "before_send" for e in events)
    assert SECRET not in json.dumps(events)
    assert not any(SAMPLE_RATE_PROPERTY in e["properties"] for e in events)  # 1.0: no sampling


def write_records(path: Path, count: int) -> list[str]:
    """A SpanJsonFormatter-style file of ``count`` tool spans, one trace each."""
    traces = [f"{n:032x}" for n in range(count)]
    lines = [
        {"time": "2025-01-01T00:00:01.000Z", "span": tool_span(n, traceId=trace, input=SECRET)}
        for n, trace in enumerate(traces)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return traces


@pytest.fixture
def one_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding one span record to replay, and the key to replay it with."""
    write_records(tmp_path / "app.jsonl", 1)
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    return tmp_path


def test_replay_of_span_records_masks_and_samples_as_the_handler_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture_server: CaptureServer
) -> None:
    traces = write_records(tmp_path / "app.jsonl", 200)
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    monkeypatch.setenv(SAMPLE_RATE_ENV, "0.5")
    command = ["replay", "--host", capture_server.url, "--mask", "tests.helpers:scrub_emails"]
    assert cli_main([*command, str(tmp_path)]) == 0
    events = capture_server.events
    expected = {trace for trace in traces if trace_sample_position(trace) < 0.5}
    assert {e["properties"]["$ai_trace_id"] for e in events} == expected
    assert all(e["properties"][SAMPLE_RATE_PROPERTY] == 0.5 for e in events)
    assert {e["properties"]["$ai_input_state"] for e in events} == {"<email>"}


@pytest.mark.parametrize(
    ("variable", "raw", "flag", "expected"),
    [
        (PRIVACY_MODE_ENV, "1", [], False),  # the variable strips the span's input
        (PRIVACY_MODE_ENV, "1", ["--no-privacy-mode"], True),  # the flag wins
        (PRIVACY_MODE_ENV, "", ["--privacy-mode"], False),
    ],
)
def test_replay_reads_privacy_mode_like_the_handler(
    one_record: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture_server: CaptureServer,
    variable: str,
    raw: str,
    flag: list[str],
    expected: bool,
) -> None:
    monkeypatch.setenv(variable, raw)
    assert cli_main(["replay", "--host", capture_server.url, *flag, str(one_record)]) == 0
    (event,) = capture_server.events
    assert ("$ai_input_state" in event["properties"]) is expected


@pytest.mark.parametrize(
    ("arguments", "variable", "raw", "message"),
    [
        ([], SAMPLE_RATE_ENV, "lots", f"environment variable {SAMPLE_RATE_ENV}"),
        ([], PRIVACY_MODE_ENV, "perhaps", f"environment variable {PRIVACY_MODE_ENV}"),
        (["--mask", "no_such_module_abc:mask"], SAMPLE_RATE_ENV, "", "--mask: cannot import"),
        (["--sample-rate", "2"], SAMPLE_RATE_ENV, "", "sample_rate must be in (0, 1]"),
    ],
)
def test_replay_refuses_bad_settings_before_sending_anything(
    one_record: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    capture_server: CaptureServer,
    arguments: list[str],
    variable: str,
    raw: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, raw)
    assert cli_main(["replay", "--host", capture_server.url, *arguments, str(one_record)]) == 2
    assert message in capsys.readouterr().err
    assert capture_server.events == []
    assert (one_record / "app.jsonl").exists()
