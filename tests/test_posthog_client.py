"""pl.posthog_client(): posthog's own AI wrappers, run for real, delivered by the handler.

The provider SDKs and posthog.ai wrappers run unchanged; only the model's HTTP
answer is canned (examples/fake_models.py).  Events go through the real
handler and transport to the dev server.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai.types import HttpOptions
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from posthog import contexts
from posthog.ai.anthropic import Anthropic
from posthog.ai.gemini import Client as Gemini
from posthog.ai.langchain import CallbackHandler
from posthog.ai.openai import AsyncOpenAI, OpenAI

import posthog_logging as pl
from fake_models import (
    anthropic_http_client,
    gemini_transport,
    openai_http_client,
    openai_transport,
)
from posthog_logging import LoggingPosthogClient, PosthogLogHandler, SpanJsonFormatter
from posthog_logging.cli import main as cli_main
from posthog_logging.devserver import CaptureServer, render_trace_tree

from .conftest import DUMMY_KEY, RecordCollector, span_logger

MESSAGES = [{"role": "user", "content": "hi"}]


class Wiring:
    """A handler on its own logger, and a posthog client and span factory for that logger."""

    count = 0

    def __init__(self, server: CaptureServer, **handler_options: Any) -> None:
        Wiring.count += 1
        self.server = server
        self.handler = PosthogLogHandler(api_key=DUMMY_KEY, host=server.url, **handler_options)
        self.logger = span_logger(f"test.wrapped.{Wiring.count}", self.handler)
        self.client = pl.posthog_client(self.logger)

    def span(self, name: str, **options: Any) -> pl.Span:
        return pl.span(name, logger=self.logger, **options)

    def openai(self, *replies: Any) -> OpenAI:
        return OpenAI(
            api_key="sk-test", posthog_client=self.client, http_client=openai_http_client(replies)
        )

    def delivered(self) -> list[dict[str, Any]]:
        self.handler.flush()
        return self.server.events

    def one(self, event: str) -> dict[str, Any]:
        (found,) = [e for e in self.delivered() if e["event"] == event]
        return found


@pytest.fixture
def wiring(capture_server: CaptureServer) -> Iterator[Wiring]:
    wired = Wiring(capture_server)
    yield wired
    wired.handler.close()


def chat(client: OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)


# ------------------------------------------------------------ outside spans


def test_a_call_outside_any_span_keeps_the_wrappers_own_trace(wiring: Wiring) -> None:
    chat(wiring.openai("Hello!"))
    event = wiring.one("$ai_generation")
    props = event["properties"]
    assert props["$ai_model"] == "gpt-4o-mini"
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (10, 7)
    assert props["$ai_output_choices"][0]["content"][0]["text"] == "Hello!"
    trace_id = props["$ai_trace_id"]
    assert str(uuid.UUID(trace_id)) == trace_id and "$ai_parent_id" not in props
    assert event["distinct_id"] == trace_id and props["$process_person_profile"] is False
    assert props["$lib"] == "posthog-logging"
    assert uuid.UUID(event["uuid"])
    stats = wiring.handler.stats()
    assert stats["sent"] == 1 and stats["dropped"] == {}


def test_default_distinct_id_takes_personless_wrapper_events(
    capture_server: CaptureServer,
) -> None:
    wired = Wiring(capture_server, default_distinct_id="batch-service")
    try:
        chat(wired.openai("Hello!"), posthog_distinct_id=None)
        event = wired.one("$ai_generation")
    finally:
        wired.handler.close()
    assert event["distinct_id"] == "batch-service"
    assert "$process_person_profile" not in event["properties"]


def test_a_callers_distinct_id_groups_and_posthog_contexts_are_kept(wiring: Wiring) -> None:
    client = wiring.openai("given")
    with contexts.new_context():
        contexts.tag("tenant", "acme")
        chat(
            client,
            posthog_distinct_id="user-9",
            posthog_groups={"company": "acme-inc"},
            posthog_properties={"$ai_span_name": "given"},
        )
        contexts.identify_context("context-user")
        # As posthog.Client.capture does: no distinct id given, the context's is used.
        wiring.client.capture("$ai_metric", properties={"$ai_span_name": "from context"})
    events = {e["properties"]["$ai_span_name"]: e for e in wiring.delivered()}
    given, from_context = events["given"], events["from context"]
    assert given["distinct_id"] == "user-9" and from_context["distinct_id"] == "context-user"
    assert given["properties"]["tenant"] == from_context["properties"]["tenant"] == "acme"
    assert given["properties"]["$groups"] == {"company": "acme-inc"}
    for event in (given, from_context):
        assert "$process_person_profile" not in event["properties"]


# ------------------------------------------------------------- inside spans


def test_calls_inside_spans_land_in_the_current_trace(wiring: Wiring) -> None:
    client = wiring.openai("plan", "answer")
    with wiring.span(
        "agent", type="agent_run", metadata={"userId": "u-1", "sessionId": "s-1"}
    ) as root:
        chat(client, posthog_properties={"$ai_span_name": "llm: plan"})
        with wiring.span("step") as step:
            chat(client, posthog_properties={"$ai_span_name": "llm: answer"})
    events = wiring.delivered()
    generations = {
        e["properties"]["$ai_span_name"]: e for e in events if e["event"] == "$ai_generation"
    }
    plan, answer = generations["llm: plan"], generations["llm: answer"]
    for event in (plan, answer):
        assert event["properties"]["$ai_trace_id"] == root.trace_id
        assert event["distinct_id"] == "u-1"
        assert "$process_person_profile" not in event["properties"]
        assert event["properties"]["$ai_session_id"] == "s-1"
    # A child of the root hangs under the trace (the root is the $ai_trace event).
    assert plan["properties"]["$ai_parent_id"] == root.trace_id
    assert answer["properties"]["$ai_parent_id"] == step.span_id
    tree = render_trace_tree(events).splitlines()
    assert tree[2].startswith("    ├── generation  llm: plan")
    assert tree[3].startswith("    └── span  step")
    assert tree[4].startswith("        └── generation  llm: answer")


def test_a_trace_id_the_caller_chose_is_kept_inside_a_span(wiring: Wiring) -> None:
    with wiring.span("agent", type="agent_run"):
        chat(wiring.openai("Hi"), posthog_trace_id="conversation-42")
    props = wiring.one("$ai_generation")["properties"]
    assert props["$ai_trace_id"] == "conversation-42"
    assert "$ai_parent_id" not in props


def test_a_parent_id_the_caller_set_is_kept_inside_a_span(wiring: Wiring) -> None:
    with wiring.span("agent", type="agent_run") as root:
        chat(wiring.openai("Hi"), posthog_properties={"$ai_parent_id": "my-step"})
    props = wiring.one("$ai_generation")["properties"]
    assert props["$ai_trace_id"] == root.trace_id
    assert props["$ai_parent_id"] == "my-step"


def test_a_span_continuing_a_remote_trace_takes_the_call(wiring: Wiring) -> None:
    header = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    with wiring.span("worker task", traceparent=header) as task:
        chat(wiring.openai("Hi"))
    props = wiring.one("$ai_generation")["properties"]
    assert props["$ai_trace_id"] == "ab" * 16
    assert props["$ai_parent_id"] == task.span_id  # not a root: the span itself is the parent


def test_the_span_is_read_on_the_calling_thread(wiring: Wiring) -> None:
    client = wiring.openai("copied", "fresh")
    with wiring.span("agent", type="agent_run") as root:
        context = contextvars.copy_context()
        copied = threading.Thread(
            target=context.run,
            args=(chat, client),
            kwargs={"posthog_properties": {"$ai_span_name": "copied"}},
        )
        copied.start()
        copied.join()
        fresh = threading.Thread(
            target=chat, args=(client,), kwargs={"posthog_properties": {"$ai_span_name": "fresh"}}
        )
        fresh.start()
        fresh.join()
    events = {
        e["properties"]["$ai_span_name"]: e["properties"]
        for e in wiring.delivered()
        if e["event"] == "$ai_generation"
    }
    assert events["copied"]["$ai_trace_id"] == root.trace_id
    assert events["fresh"]["$ai_trace_id"] != root.trace_id
    assert "$ai_parent_id" not in events["fresh"]


def test_streaming_call_inside_a_span(wiring: Wiring) -> None:
    client = wiring.openai("Streams arrive word by word.")
    with wiring.span("agent", type="agent_run") as root:
        stream = chat(client, stream=True, stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip() == "Streams arrive word by word."
    props = wiring.one("$ai_generation")["properties"]
    assert props["$ai_trace_id"] == root.trace_id and props["$ai_parent_id"] == root.trace_id
    assert text.strip() in json.dumps(props["$ai_output_choices"])  # shape varies by version
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (10, 7)


def test_embeddings_inside_a_span(wiring: Wiring) -> None:
    client = wiring.openai()
    with wiring.span("index", type="agent_run") as root, wiring.span("embed step") as step:
        client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    event = wiring.one("$ai_embedding")["properties"]
    assert event["$ai_model"] == "text-embedding-3-small" and event["$ai_input_tokens"] == 8
    assert event["$ai_trace_id"] == root.trace_id and event["$ai_parent_id"] == step.span_id


def test_async_client_in_tasks_joins_each_tasks_span(wiring: Wiring) -> None:
    client = AsyncOpenAI(
        api_key="sk-test",
        posthog_client=wiring.client,
        http_client=httpx.AsyncClient(transport=openai_transport(["a", "b"])),
    )

    async def worker(name: str) -> str:
        with wiring.span(name) as step:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, posthog_properties={"$ai_span_name": name}
            )
            return step.span_id

    async def run() -> list[str]:
        with wiring.span("agent", type="agent_run"):
            return list(await asyncio.gather(worker("one"), worker("two")))

    span_ids = asyncio.run(run())
    parents = {
        e["properties"]["$ai_span_name"]: e["properties"]["$ai_parent_id"]
        for e in wiring.delivered()
        if e["event"] == "$ai_generation"
    }
    assert [parents["one"], parents["two"]] == span_ids


def test_anthropic_call_inside_a_span(wiring: Wiring) -> None:
    client = Anthropic(
        api_key="sk-ant-test",
        posthog_client=wiring.client,
        http_client=anthropic_http_client(["Bonjour"]),
    )
    with wiring.span("translate", type="agent_run", metadata={"userId": "u-fr"}) as root:
        client.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        )
    event = wiring.one("$ai_generation")
    props = event["properties"]
    assert props["$ai_provider"] == "anthropic" and props["$ai_trace_id"] == root.trace_id
    assert (props["$ai_input_tokens"], props["$ai_cache_read_input_tokens"]) == (25, 100)
    assert event["distinct_id"] == "u-fr"


def test_gemini_call_inside_a_span(wiring: Wiring) -> None:
    client = Gemini(
        api_key="gemini-test",
        posthog_client=wiring.client,
        http_options=HttpOptions(
            base_url="http://mock.gemini", client_args={"transport": gemini_transport(["Soleil"])}
        ),
    )
    with wiring.span("forecast", type="agent_run", metadata={"userId": "u-g"}) as root:
        response = client.models.generate_content(model="gemini-2.0-flash", contents="Paris?")
    assert response.text == "Soleil"
    event = wiring.one("$ai_generation")
    props = event["properties"]
    assert props["$ai_provider"] == "gemini" and props["$ai_model"] == "gemini-2.0-flash"
    assert props["$ai_trace_id"] == root.trace_id
    assert props["$ai_parent_id"] == root.trace_id  # the root span stands for its trace
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (12, 4)
    if "$ai_cache_read_input_tokens" in props:  # posthog's wrapper reports them from 7.x
        assert props["$ai_cache_read_input_tokens"] == 2
        assert props["$ai_cache_reporting_exclusive"] is False  # Gemini's input includes them
    assert props["$ai_output_choices"][0]["content"][0]["text"] == "Soleil"
    assert event["distinct_id"] == "u-g"


def langchain_chain() -> Any:
    reply = AIMessage(
        "fine", usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
    )
    model = GenericFakeChatModel(messages=iter([reply]))
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    return prompt | model | StrOutputParser()


def test_langchain_run_outside_a_span_is_its_own_trace(wiring: Wiring) -> None:
    handler = CallbackHandler(client=wiring.client)
    langchain_chain().invoke({"question": "ok?"}, config={"callbacks": [handler]})
    events = wiring.delivered()
    (trace,) = [e for e in events if e["event"] == "$ai_trace"]
    run_id = trace["properties"]["$ai_trace_id"]
    assert {e["properties"]["$ai_trace_id"] for e in events} == {run_id}
    generation = wiring.one("$ai_generation")["properties"]
    assert generation["$ai_parent_id"] == run_id  # LangChain's uuid objects arrive as text
    assert generation["$ai_span_id"] != run_id


def test_langchain_run_inside_a_span_becomes_a_span_of_that_trace(wiring: Wiring) -> None:
    handler = CallbackHandler(client=wiring.client)
    with wiring.span("bot", type="agent_run", metadata={"userId": "u-lc"}) as root:
        langchain_chain().invoke({"question": "ok?"}, config={"callbacks": [handler]})
    events = wiring.delivered()
    assert {e["properties"]["$ai_trace_id"] for e in events} == {root.trace_id}
    (trace,) = [e for e in events if e["event"] == "$ai_trace"]
    assert trace["properties"]["$ai_span_name"] == "bot"  # only ours is the trace
    chain = next(e for e in events if e["properties"].get("$ai_span_name") == "RunnableSequence")
    assert chain["event"] == "$ai_span"
    assert chain["properties"]["$ai_parent_id"] == root.trace_id
    generation = wiring.one("$ai_generation")
    assert generation["properties"]["$ai_parent_id"] == chain["properties"]["$ai_span_id"]
    assert {e["distinct_id"] for e in events} == {"u-lc"}
    lines = render_trace_tree(events).splitlines()
    assert lines[2].startswith("    └── span  RunnableSequence")
    assert any(line.startswith("        ├── generation  GenericFakeChatModel") for line in lines)


# ------------------------------------------------------------------ privacy


def test_handler_privacy_mode_strips_wrapper_content(capture_server: CaptureServer) -> None:
    wired = Wiring(capture_server, privacy_mode=True)
    try:
        chat(wired.openai("secret answer"))
        props = wired.one("$ai_generation")["properties"]
    finally:
        wired.handler.close()
    assert "$ai_input" not in props and "$ai_output_choices" not in props
    assert props["$ai_output_tokens"] == 7 and props["$ai_model"] == "gpt-4o-mini"


def test_client_privacy_mode_keeps_content_out_of_the_record(wiring: Wiring) -> None:
    collector = RecordCollector()
    wiring.logger.addHandler(collector)
    client = OpenAI(
        api_key="sk-test",
        posthog_client=pl.posthog_client(wiring.logger, privacy_mode=True),
        http_client=openai_http_client(["secret answer"]),
    )
    chat(client)
    (record,) = collector.records
    logged = record.__dict__["posthog_event"]["properties"]
    assert logged["$ai_input"] is None and logged["$ai_output_choices"] is None
    assert "secret" not in json.dumps(wiring.one("$ai_generation"))


# ---------------------------------------------------------------- bad input


def test_bad_wrapper_events_are_dropped_counted_and_logged(
    wiring: Wiring, library_logs: RecordCollector
) -> None:
    client = wiring.client
    assert client.capture("$pageview", distinct_id="u", properties={}) is not None
    client.capture(None, properties={"$ai_model": "x"})
    client.capture("$ai_generation", properties=["not", "a", "mapping"])
    wiring.logger.info("by hand", extra={"posthog_event": "not a mapping"})
    wiring.logger.info("by hand", extra={"posthog_event": {"properties": {}}})
    chat(wiring.openai("still fine"))
    events = wiring.delivered()
    assert [e["event"] for e in events] == ["$ai_generation"]
    assert wiring.handler.stats()["dropped"] == {"invalid_posthog_event": 5}
    errors = library_logs.messages(logging.ERROR)
    assert any(
        "'$pageview' is neither an $ai_ event nor a survey or $exception" in m for m in errors
    )
    assert any("posthog_event is a str, not a mapping" in m for m in errors)
    assert sum("posthog_event has no event name" in m for m in errors) == 2
    assert any("properties are a list" in m for m in errors)


def test_capture_never_raises_on_unreadable_arguments(wiring: Wiring) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    wiring.client.capture("$ai_generation", properties={"x": 1}, uuid=Broken())
    (event,) = wiring.delivered()  # logged as given; the handler made its own uuid
    assert event["properties"]["x"] == 1 and uuid.UUID(event["uuid"])


# ------------------------------------------------- uuids, formatter, replay


def test_capture_returns_the_uuid_the_event_is_sent_with(wiring: Wiring) -> None:
    returned = wiring.client.capture("$ai_metric", distinct_id="u", properties={"v": 1})
    given = str(uuid.uuid4())
    wiring.client.capture("$ai_metric", distinct_id="u", properties={"v": 2}, uuid=given)
    by_value = {e["properties"]["v"]: e["uuid"] for e in wiring.delivered()}
    assert by_value == {1: returned, 2: given}


def test_hand_logged_events_with_a_span_id_get_a_stable_uuid(wiring: Wiring) -> None:
    event = {
        "event": "$ai_span",
        "properties": {"$ai_trace_id": "t-1", "$ai_span_id": "s-1", "$ai_span_name": "x"},
    }
    wiring.logger.info("once", extra={"posthog_event": event})
    wiring.logger.info("twice", extra={"posthog_event": event})
    first, second = wiring.delivered()
    assert first["uuid"] == second["uuid"]
    assert first["distinct_id"] == "t-1" and first["properties"]["$process_person_profile"] is False


def test_json_lines_of_wrapper_events_replay_to_the_same_events(
    wiring: Wiring, tmp_path: Path, capture_server: CaptureServer
) -> None:
    lines = tmp_path / "ai.jsonl"
    file_handler = logging.FileHandler(lines)
    file_handler.setFormatter(SpanJsonFormatter())
    wiring.logger.addHandler(file_handler)
    try:
        with wiring.span("agent", type="agent_run"):
            chat(wiring.openai("Hi"))
    finally:
        file_handler.close()
    sent = wiring.one("$ai_generation")
    written = [json.loads(line) for line in lines.read_text().splitlines()]
    (line,) = [line for line in written if "posthog_event" in line]
    assert line["posthog_event"]["event"] == "$ai_generation"
    capture_server.clear()
    argv = ["replay", str(lines), "--api-key", DUMMY_KEY, "--host", capture_server.url]
    assert cli_main(argv) == 0
    replayed = next(e for e in capture_server.events if e["event"] == "$ai_generation")
    assert replayed["uuid"] == sent["uuid"]
    assert replayed["properties"] == sent["properties"]
    assert replayed["timestamp"] == sent["timestamp"]


def test_flush_delivers_what_the_clients_logger_holds(capture_server: CaptureServer) -> None:
    wired = Wiring(capture_server, flush_interval=60.0, flush_at=100)
    try:
        chat(wired.openai("Hi"))
        wired.client.flush()
        assert [e["event"] for e in capture_server.events] == ["$ai_generation"]
    finally:
        wired.handler.close()


def test_the_client_has_what_the_wrappers_read() -> None:
    client = LoggingPosthogClient()
    assert client.logger.name == "posthog_logging.spans"
    assert bool(client) and client.privacy_mode is False
    assert client.enable_full_ai_capture is False and client.enable_exception_autocapture is False
    assert client.capture_ai == client.capture
    with pytest.raises(TypeError, match="privacy_mode"):
        LoggingPosthogClient(privacy_mode="yes")  # type: ignore[arg-type]
