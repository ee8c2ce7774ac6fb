"""Privacy mode holds for every instrumentation route LoggingSpanProcessor reads.

A secret prompt and a secret reply go through each route: the real
``openinference-instrumentation-openai``, ``opentelemetry-instrumentation-openai-v2``,
OpenLLMetry's ``opentelemetry-instrumentation-openai`` and ``logfire`` (streamed and
not) against a mocked model, and hand-built spans with the real OTel SDK for each
convention's content attributes (GenAI in all its generations, OpenLLMetry/traceloop,
Logfire, Vercel ``ai.*``, OpenInference).  With ``privacy_mode=True`` the secrets are
in no batch the capture server received (the raw JSON searched); without it they are,
so the routes do carry them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import logfire
import openai
import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.trace import Tracer

from posthog_logging import PosthogLogHandler
from posthog_logging.contract import SPAN_ATTR
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .helpers import named
from .otel_helpers import Otel, instrument_openllmetry
from .test_logfire import logfire_openai
from .test_otel_openai import mocked_openai

SECRET_PROMPT = "the launch code is 7741-ALPHA"
SECRET_REPLY = "confirmed: 7741-ALPHA"
SECRETS = ("7741-ALPHA",)


def secret_model(request: httpx.Request) -> httpx.Response:
    """An OpenAI chat endpoint that answers with the secret reply, streamed or not."""
    body = json.loads(request.content)
    usage = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    common = {"id": "c1", "created": 1, "model": "gpt-x"}
    if body.get("stream"):
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": SECRET_REPLY}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": usage},
        ]
        text = "".join(
            f"data: {json.dumps({**common, 'object': 'chat.completion.chunk', **c})}\n\n"
            for c in chunks
        )
        return httpx.Response(
            200, text=text + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"}
        )
    message = {"role": "assistant", "content": SECRET_REPLY}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return httpx.Response(
        200, json={**common, "object": "chat.completion", "choices": [choice], "usage": usage}
    )


def secret_client() -> openai.OpenAI:
    return mocked_openai(secret_model)


def ask(client: openai.OpenAI) -> None:
    """One plain and one streamed call with the secret prompt."""
    messages: Any = [{"role": "user", "content": SECRET_PROMPT}]
    client.chat.completions.create(model="gpt-x", messages=messages)
    stream = client.chat.completions.create(
        model="gpt-x", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert SECRET_REPLY in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def hand_built_spans(tracer: Tracer) -> None:
    """Each convention's content attributes, as its instrumentations set them."""
    prompt_json = json.dumps([{"role": "user", "content": SECRET_PROMPT}])
    with tracer.start_as_current_span(
        "agent run", attributes={"gen_ai.operation.name": "invoke_agent"}
    ):
        # OpenTelemetry GenAI, latest: messages, system instructions, tool call.
        tracer.start_span(
            "chat gpt-x",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-x",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": SECRET_REPLY}]}]
                ),
                "gen_ai.system_instructions": json.dumps(
                    [{"type": "text", "content": SECRET_PROMPT}]
                ),
            },
        ).end()
        tracer.start_span(
            "execute_tool lookup",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.call.arguments": json.dumps({"q": SECRET_PROMPT}),
                "gen_ai.tool.call.result": SECRET_REPLY,
            },
        ).end()
        # GenAI, older: message events; OpenLLMetry's flattened prompt and completion.
        events_span = tracer.start_span(
            "chat old", attributes={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-x"}
        )
        events_span.add_event("gen_ai.user.message", {"content": SECRET_PROMPT})
        events_span.add_event("gen_ai.choice", {"message": json.dumps({"content": SECRET_REPLY})})
        events_span.end()
        tracer.start_span(
            "openai.chat",
            attributes={
                "llm.request.type": "chat",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": SECRET_PROMPT,
                "gen_ai.completion.0.content": SECRET_REPLY,
                "llm.prompts.0.content": SECRET_PROMPT,
            },
        ).end()
        # traceloop workflow/task entities.
        tracer.start_span(
            "plan.task",
            attributes={
                "traceloop.span.kind": "task",
                "traceloop.entity.input": json.dumps({"args": [SECRET_PROMPT]}),
                "traceloop.entity.output": json.dumps(SECRET_REPLY),
            },
        ).end()
        # Logfire / Pydantic AI: raw request and response, message events, the rendered message.
        tracer.start_span(
            "agent run {prompt}",
            attributes={
                "gen_ai.agent.name": "support",
                "logfire.msg_template": "agent run {prompt}",
                "logfire.msg": f"agent run {SECRET_PROMPT}",
                "prompt": SECRET_PROMPT,
                "all_messages_events": prompt_json,
                "final_result": SECRET_REPLY,
                "request_data": json.dumps({"messages": [{"content": SECRET_PROMPT}]}),
                "response_data": json.dumps({"message": {"content": SECRET_REPLY}}),
            },
        ).end()
        # Vercel AI SDK: generation, tool call, object and embedding.
        tracer.start_span(
            "ai.generateText.doGenerate",
            attributes={
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.prompt.messages": prompt_json,
                "ai.response.text": SECRET_REPLY,
                "ai.response.toolCalls": json.dumps(
                    [{"toolCallId": "t1", "toolName": "x", "args": SECRET_PROMPT}]
                ),
            },
        ).end()
        tracer.start_span(
            "ai.generateObject",
            attributes={
                "ai.operationId": "ai.generateObject",
                "ai.prompt": json.dumps({"prompt": SECRET_PROMPT}),
                "ai.response.object": json.dumps({"answer": SECRET_REPLY}),
            },
        ).end()
        tracer.start_span(
            "ai.toolCall",
            attributes={"ai.toolCall.args": SECRET_PROMPT, "ai.toolCall.result": SECRET_REPLY},
        ).end()
        tracer.start_span(
            "ai.embed", attributes={"ai.operationId": "ai.embed", "ai.value": SECRET_PROMPT}
        ).end()
        # OpenInference: chain, retriever, tool.
        tracer.start_span(
            "chain",
            attributes={
                "openinference.span.kind": "CHAIN",
                "input.value": SECRET_PROMPT,
                "output.value": SECRET_REPLY,
                "llm.prompt_template.variables": json.dumps({"q": SECRET_PROMPT}),
            },
        ).end()
        tracer.start_span(
            "retrieve",
            attributes={
                "openinference.span.kind": "RETRIEVER",
                "retrieval.documents.0.document.content": SECRET_REPLY,
            },
        ).end()
        # An attribute no convention names, on an AI span.
        tracer.start_span(
            "custom", attributes={"gen_ai.operation.name": "x", "app.note": SECRET_PROMPT}
        ).end()


@pytest.fixture
def all_routes(
    capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CaptureServer, Any]]:
    """Runs every route through one handler; yields the server and a runner."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    instrumentors: list[Any] = []

    def run(privacy_mode: bool) -> list[str]:
        handler = PosthogLogHandler(
            api_key=DUMMY_KEY, host=capture_server.url, privacy_mode=privacy_mode
        )
        logger = span_logger("test.privacy.routes", handler)
        for instrumentor in (OpenInferenceInstrumentor(), OpenAIV2Instrumentor()):  # type: ignore[no-untyped-call]
            otel = Otel(logger)
            instrumentor.instrument(tracer_provider=otel.provider)
            instrumentors.append(instrumentor)
            ask(secret_client())
            instrumentor.uninstrument()
            hand_built_spans(otel.tracer)
        otel = Otel(logger)
        uninstrument = instrument_openllmetry(otel.provider)
        ask(secret_client())
        uninstrument()
        hand_built_spans(otel.tracer)
        client = logfire_openai(logger, secret_model)
        with logfire.span("logfire route"):
            ask(client)
        handler.close()
        return [json.dumps(request.batch) for request in capture_server.requests]

    yield capture_server, run
    for instrumentor in instrumentors:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def test_privacy_mode_sends_the_secret_through_no_route(all_routes: Any) -> None:
    server, run = all_routes
    bodies = run(privacy_mode=True)
    sent = "\n".join(bodies)
    assert not [secret for secret in SECRETS if secret in sent]
    generations = [e for e in server.events if e["event"] == "$ai_generation"]
    # A plain and a streamed call per instrumentation (four), three hand-built at least.
    assert len(generations) >= 2 * 4 + 3
    for props in (e["properties"] for e in generations):
        assert "$ai_input" not in props and "$ai_output_choices" not in props
    models = {props["$ai_model"] for props in (e["properties"] for e in generations)}
    assert "gpt-x" in models  # the facts that are not content still go


def test_without_privacy_mode_every_route_carries_the_secret(all_routes: Any) -> None:
    server, run = all_routes
    run(privacy_mode=False)
    generations = [e["properties"] for e in server.events if e["event"] == "$ai_generation"]
    carrying = [props for props in generations if SECRETS[0] in json.dumps(props)]
    assert len(carrying) >= 2 * 4 + 3  # the test above has something to hide


def ai_span_properties(server: CaptureServer, privacy_mode: bool) -> Any:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=server.url, privacy_mode=privacy_mode)
    otel = Otel(span_logger("test.privacy.unknown", handler))
    with otel.tracer.start_as_current_span("root", attributes={"gen_ai.agent.name": "a"}):
        otel.tracer.start_span(
            "step",
            attributes={
                "gen_ai.agent.name": "support",
                "http.method": "GET",
                "app.note": "ok",
                "app.labels": ["a", "b"],
                "app.count": 3,
                "app.ratio": 0.5,
                "app.flag": True,
                "app.sizes": [1, 2],
            },
        ).end()
    handler.close()
    return named(server, "$ai_span")["step"]


def test_under_privacy_mode_unknown_attributes_pass_only_when_they_cannot_hold_text(
    capture_server: CaptureServer,
) -> None:
    props = ai_span_properties(capture_server, privacy_mode=True)
    assert props["gen_ai.agent.name"] == "support"  # listed as not content
    assert props["http.method"] == "GET"
    assert (props["app.count"], props["app.ratio"], props["app.flag"]) == (3, 0.5, True)
    assert props["app.sizes"] == [1, 2]
    assert "app.note" not in props  # short, still text: withheld
    assert "app.labels" not in props
    capture_server.clear()
    props = ai_span_properties(capture_server, privacy_mode=False)
    assert (props["app.note"], props["app.labels"]) == ("ok", ["a", "b"])  # without: all pass


def test_privacy_mode_on_the_processor_or_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records that reach no PosthogLogHandler (a JSON-lines file sent later) hold no content."""
    collector = RecordCollector()
    logger = span_logger("test.privacy.records", collector)

    def recorded_span(**processor: Any) -> Any:
        Otel(logger, **processor).tracer.start_span(
            "chain",
            attributes={"openinference.span.kind": "CHAIN", "input.value": SECRET_PROMPT},
        ).end()
        return collector.records[-1].__dict__[SPAN_ATTR]

    assert recorded_span()["input"] == SECRET_PROMPT
    assert "input" not in recorded_span(privacy_mode=True)
    monkeypatch.setenv("POSTHOG_PRIVACY_MODE", "true")
    assert "input" not in recorded_span()
