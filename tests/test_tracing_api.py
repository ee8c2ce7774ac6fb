"""The tracing API: records it emits, context propagation, generators, streaming."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.usage import normalize_usage

from .conftest import DUMMY_KEY, RecordCollector, at

LOGGER = "test.tracing"


@pytest.fixture
def records() -> Iterator[RecordCollector]:
    collector = RecordCollector()
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [collector]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield collector
    logger.handlers.clear()


def spans(collector: RecordCollector) -> list[dict[str, Any]]:
    """The ended spans recorded (roots also log their start)."""
    return [
        r.__dict__["span"]
        for r in collector.records
        if "span" in r.__dict__ and r.__dict__["span_event"] == "span_ended"
    ]


def by_name(collector: RecordCollector) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in spans(collector)}


def test_records_are_mastra_shaped_with_fresh_ids(records: RecordCollector) -> None:
    with pl.span(
        "root", type="AGENT_RUN", input="q", metadata={"userId": "u1"}, tags=["prod"], logger=LOGGER
    ) as root:
        with pl.span("child", type="tool_call", logger=LOGGER, tags=["ignored"]) as child:
            child.update(output={"ok": True}, attributes={"k": 1})
        root.update(output="a")
    got = by_name(records)
    root_span, child_span = got["root"], got["child"]
    assert re.fullmatch(r"[0-9a-f]{16}", root_span["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", root_span["traceId"])
    assert root_span["isRootSpan"] is True and "parentSpanId" not in root_span
    assert root_span["type"] == "agent_run" and root_span["tags"] == ["prod"]
    assert root_span["input"] == "q" and root_span["output"] == "a"
    assert child_span["parentSpanId"] == root_span["id"]
    assert child_span["traceId"] == root_span["traceId"]
    assert child_span["isRootSpan"] is False and "tags" not in child_span
    assert child_span["metadata"] == {"userId": "u1"}  # inherited from the root
    assert child_span["attributes"] == {"k": 1} and "input" not in child_span
    assert child_span["startTime"] <= child_span["endTime"]
    events = [(r.__dict__["span_event"], r.__dict__["span"]["name"]) for r in records.records]
    assert events == [("span_started", "root"), ("span_ended", "child"), ("span_ended", "root")]
    assert root.span_id != child.span_id


def test_exceptions_mark_the_span_and_propagate_untouched(records: RecordCollector) -> None:
    error = KeyError("missing")
    with pytest.raises(KeyError) as raised, pl.span("fails", logger=LOGGER):
        raise error
    assert raised.value is error
    info = by_name(records)["fails"]["errorInfo"]
    assert info == {"message": "'missing'", "name": "KeyError", "category": "USER"}
    with pytest.raises(ValueError), pl.span("with stack", logger=LOGGER, capture_traceback=True):
        raise ValueError("x")
    assert "Traceback" in by_name(records)["with stack"]["errorInfo"]["stack"]


def test_emit_start_and_manual_start_end(records: RecordCollector) -> None:
    with pl.span("root", logger=LOGGER):
        manual = pl.span("long run", logger=LOGGER, emit_start=True)
        manual.start()
        manual.end()
        manual.end()
        quiet = pl.span("short", logger=LOGGER)
        quiet.start()
        quiet.end()
    events = [(r.__dict__["span_event"], r.__dict__["span"]["name"]) for r in records.records]
    assert events == [
        ("span_started", "root"),
        ("span_started", "long run"),
        ("span_ended", "long run"),
        ("span_ended", "short"),
        ("span_ended", "root"),
    ]
    started = records.records[1].__dict__["span"]
    assert "endTime" not in started


def test_event_spans_are_zero_duration_children(records: RecordCollector) -> None:
    with pl.span("root", logger=LOGGER) as root:
        root.event("checkpoint", output={"step": 1}, attributes={"a": 1})
    event = by_name(records)["checkpoint"]
    assert event["isEvent"] is True
    assert event["parentSpanId"] == root.span_id
    assert event["startTime"] == event["endTime"]


def test_asyncio_tasks_and_gather_keep_their_parents(records: RecordCollector) -> None:
    async def tool(n: int) -> None:
        with pl.span(f"tool {n}", type="tool_call", logger=LOGGER):
            await asyncio.sleep(0.01 * (3 - n))

    async def agent() -> str:
        async with pl.span("agent", type="agent_run", logger=LOGGER) as root:
            await asyncio.gather(*(tool(n) for n in range(3)))
            await asyncio.create_task(tool(9))
            return root.span_id

    root_id = asyncio.run(agent())
    got = by_name(records)
    for n in (0, 1, 2, 9):
        assert got[f"tool {n}"]["parentSpanId"] == root_id
        assert got[f"tool {n}"]["traceId"] == got["agent"]["traceId"]


def test_threads_with_copied_context_and_executors(records: RecordCollector) -> None:
    def work(label: str) -> None:
        with pl.span(label, logger=LOGGER):
            pass

    with pl.span("root", logger=LOGGER) as root:
        thread = threading.Thread(target=contextvars.copy_context().run, args=(work, "thread"))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            context = contextvars.copy_context()
            pool.submit(context.run, work, "pooled").result()
        plain = threading.Thread(target=work, args=("uncopied",))
        plain.start()
        plain.join()
    got = by_name(records)
    assert got["thread"]["parentSpanId"] == root.span_id
    assert got["pooled"]["parentSpanId"] == root.span_id
    assert got["uncopied"]["isRootSpan"] is True  # no context given: a trace of its own


def test_traced_functions_sync_and_async(records: RecordCollector) -> None:
    @pl.traced(type="tool_call", logger=LOGGER)
    def add(a: int, b: int = 2) -> int:
        return a + b

    class Agent:
        @pl.traced(logger=LOGGER, name="Agent.ask")
        async def ask(self, question: str) -> str:
            return question.upper()

    assert add(1, b=5) == 6
    assert asyncio.run(Agent().ask("hi")) == "HI"
    assert add.__name__ == "add"
    got = by_name(records)
    assert got[add.__qualname__]["input"] == {"a": 1, "b": 5}
    assert got[add.__qualname__]["output"] == 6
    assert got["Agent.ask"]["input"] == {"question": "hi"}
    assert got["Agent.ask"]["output"] == "HI"


def test_bare_traced_decorator(records: RecordCollector) -> None:
    @pl.traced
    def plain() -> int:
        return 1

    logger = logging.getLogger("posthog_logging.spans")
    collector = RecordCollector()
    logger.addHandler(collector)
    logger.setLevel(logging.INFO)
    try:
        assert plain() == 1
    finally:
        logger.removeHandler(collector)
        logger.setLevel(logging.NOTSET)
    assert spans(collector)[0]["type"] == "generic"


def test_traced_generator_stays_open_and_does_not_leak(records: RecordCollector) -> None:
    @pl.traced(logger=LOGGER, name="numbers")
    def numbers(limit: int) -> Iterator[int]:
        for n in range(limit):
            current = pl.current_span()
            assert current is not None and current.name == "numbers"
            yield n

    generator = numbers(3)
    assert next(generator) == 0
    assert pl.current_span() is None  # not current between resumes
    assert spans(records) == []  # still open
    assert list(generator) == [1, 2]
    span = by_name(records)["numbers"]
    assert span["output"] == [0, 1, 2]
    assert span["attributes"]["yieldedCount"] == 3
    assert "errorInfo" not in span


def test_closed_and_failing_generators(records: RecordCollector) -> None:
    @pl.traced(logger=LOGGER, name="many")
    def many() -> Generator[int, None, None]:
        yield from range(1000)

    generator = many()
    for _ in range(150):
        next(generator)
    generator.close()
    span = by_name(records)["many"]
    assert "errorInfo" not in span
    assert span["output"]["count"] == 150 and len(span["output"]["items"]) == 100

    @pl.traced(logger=LOGGER, name="broken")
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        list(broken())
    assert by_name(records)["broken"]["errorInfo"]["message"] == "mid-stream"


def test_traced_async_generator(records: RecordCollector) -> None:
    @pl.traced(logger=LOGGER, name="stream", type="model_step")
    async def stream() -> AsyncIterator[str]:
        for token in ("a", "b"):
            await asyncio.sleep(0)
            yield token

    async def consume() -> list[str]:
        with pl.span("outer", logger=LOGGER):
            return [token async for token in stream()]

    assert asyncio.run(consume()) == ["a", "b"]
    got = by_name(records)
    assert got["stream"]["output"] == ["a", "b"]
    assert got["stream"]["parentSpanId"] == got["outer"]["id"]


def test_streaming_generation_records_first_token_and_text(records: RecordCollector) -> None:
    with (
        time_machine.travel(at("2025-01-01T00:00:00Z"), tick=False) as clock,
        pl.generation(
            "llm",
            model="gpt-4o-mini",
            provider="openai",
            logger=LOGGER,
            input=[{"role": "user", "content": "hi"}],
            emit_chunks=True,
            parameters={"temperature": 0.2},
        ) as gen,
    ):
        clock.shift(0.35)
        gen.chunk("Hel")
        clock.shift(0.5)
        gen.chunk("lo")
        gen.update(usage={"prompt_tokens": 5, "completion_tokens": 2})
    got = by_name(records)
    llm = got["llm"]
    assert llm["type"] == "model_generation"
    assert llm["output"] == {"text": "Hello"}
    assert llm["attributes"]["completionStartTime"].isoformat().endswith("00:00:00.350000+00:00")
    assert llm["attributes"]["streaming"] is True
    assert llm["attributes"]["usage"] == {"inputTokens": 5, "outputTokens": 2}
    assert llm["attributes"]["parameters"] == {"temperature": 0.2}
    chunk = got["chunk: 'text-delta'"]
    assert chunk["type"] == "model_chunk" and chunk["isEvent"] is True


def test_end_to_end_time_to_first_token(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = logging.getLogger("test.tracing.e2e")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with time_machine.travel(at("2025-01-01T00:00:00Z"), tick=False) as clock:
        agent = pl.span("agent", type="agent_run", logger=logger, metadata={"userId": "u"})
        with agent, pl.generation("llm", model="m", provider="p", logger=logger) as gen:
            clock.shift(0.25)
            gen.chunk("x")
            clock.shift(1)
        handler.close()
    generation_event = next(e for e in capture_server.events if e["event"] == "$ai_generation")
    assert generation_event["properties"]["$ai_time_to_first_token"] == 0.25
    assert generation_event["properties"]["$ai_latency"] == 1.25
    assert generation_event["distinct_id"] == "u"
    assert {e["event"] for e in capture_server.events} == {"$ai_generation", "$ai_trace"}


@dataclass
class _SdkUsage:
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"inputTokens": 10, "outputTokens": 4, "cachedInputTokens": 3, "reasoningTokens": 1},
            {
                "inputTokens": 10,
                "outputTokens": 4,
                "inputDetails": {"cacheRead": 3},
                "outputDetails": {"reasoning": 1},
            },
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 6},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
            {
                "inputTokens": 10,
                "outputTokens": 4,
                "inputDetails": {"cacheRead": 6},
                "outputDetails": {"reasoning": 2},
            },
        ),
        (
            {
                "input_tokens": 10,
                "output_tokens": 4,
                "input_tokens_details": {"cached_tokens": 1},
                "output_tokens_details": {"reasoning_tokens": 3},
            },
            {
                "inputTokens": 10,
                "outputTokens": 4,
                "inputDetails": {"cacheRead": 1},
                "outputDetails": {"reasoning": 3},
            },
        ),
        (
            _SdkUsage(10, 4, 100, 20),
            {
                "inputTokens": 130,
                "outputTokens": 4,
                "inputDetails": {"cacheRead": 100, "cacheWrite": 20},
            },
        ),
        ({"something": "else", "inputTokens": "many"}, {}),
    ],
)
def test_usage_shapes_are_normalised(usage: Any, expected: dict[str, Any]) -> None:
    assert normalize_usage(usage) == expected


def test_caller_mistakes_raise_at_the_call_site() -> None:
    with pytest.raises(TypeError, match="name"):
        pl.span(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown span type"):
        pl.span("x", type="not_a_type")
    with pytest.raises(TypeError, match="metadata"):
        pl.span("x", metadata=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pl.traced(type="bogus")


def test_unserialisable_data_never_raises(capture_server: CaptureServer) -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = logging.getLogger("test.tracing.weird")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    with pl.span("weird", logger=logger, input=Weird(), metadata={"c": cyclic}) as weird:
        weird.update(output={b"bytes": float("nan")})
    handler.close()
    (event,) = capture_server.events
    assert event["properties"]["$ai_input_state"] == "<unrepresentable Weird>"
    assert event["properties"]["c"] == {"me": "[Circular]"}
    assert event["properties"]["$ai_output_state"] == {"b'bytes'": None}


def test_feedback_helper_and_capture_logs(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, capture_logs=True)
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    span_logger = logging.getLogger("posthog_logging.spans")
    span_logger.setLevel(logging.INFO)  # spans are INFO records; the root passes WARNING up
    app = logging.getLogger("capture_logs_app")
    try:
        with pl.span("agent", type="agent_run") as root:
            app.warning("retrying tool %s", "search")
            app.info("not captured: below WARNING")
            try:
                raise ValueError("bad input")
            except ValueError:
                app.exception("tool failed")
        app.warning("outside any span: not captured")
        pl.feedback(root.trace_id, "up", feedbackType="thumbs", comment="nice")
        handler.flush()
    finally:
        root_logger.removeHandler(handler)
        span_logger.setLevel(logging.NOTSET)
        handler.close()
    names = [e["properties"].get("$ai_span_name") for e in capture_server.events]
    assert "log WARNING: retrying tool search" in names
    failed = next(
        e
        for e in capture_server.events
        if e["properties"].get("$ai_span_name") == "log ERROR: tool failed"
    )
    assert failed["properties"]["$ai_is_error"] is True
    assert failed["properties"]["exception"] == "ValueError: bad input"
    assert failed["properties"]["$ai_parent_id"] == root.trace_id
    feedback = next(e for e in capture_server.events if e["event"] == "$ai_feedback")
    assert feedback["properties"]["$ai_feedback_text"] == "nice"
    assert len(capture_server.events) == 4


def test_feedback_inside_a_span_names_the_traces_user(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    span_logger = logging.getLogger("posthog_logging.spans")
    span_logger.addHandler(handler)
    span_logger.setLevel(logging.INFO)
    try:
        with pl.span("chat", type="agent_run", metadata={"userId": "u-5"}) as chat:
            with pl.span("answer", type="tool_call"):
                pl.feedback(chat.trace_id, 1, feedbackType="thumbs")  # the trace's user
            pl.feedback(chat.trace_id, 0, userId="reviewer")  # a user given wins
            pl.feedback("f" * 32, "other")  # another trace: its user is not known here
        handler.flush()
    finally:
        span_logger.removeHandler(handler)
        span_logger.setLevel(logging.NOTSET)
        handler.close()
    feedback = [e for e in capture_server.events if e["event"] == "$ai_feedback"]
    by_text = {e["properties"]["$ai_feedback_text"]: e for e in feedback}
    assert by_text["1"]["distinct_id"] == "u-5"
    assert "$process_person_profile" not in by_text["1"]["properties"]
    assert by_text["0"]["distinct_id"] == "reviewer"
    assert by_text["other"]["distinct_id"] == "f" * 32  # personless
    assert len(feedback) == 3
