"""OpenTelemetry-instrumented OpenAI calls, delivered to PostHog through ``logging``.

The application is instrumented the OpenTelemetry way
(``opentelemetry-instrumentation-openai-v2``) and has its own spans; one
``LoggingSpanProcessor`` turns the GenAI spans, and the spans around them,
into span records for the ``PosthogLogHandler``.  The OpenAI client talks to
an in-process fake (``httpx.MockTransport``), so no network or key is needed.

    pip install -e '.[otel]' openai opentelemetry-instrumentation-openai-v2 \
        'opentelemetry-util-genai<1.2'    # from a clone; see docs/opentelemetry.md
    python examples/otel_openai.py
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionToolParam
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from example_support import setup
from posthog_logging.otel import LoggingSpanProcessor

# Record prompts and replies on the spans (the instrumentation leaves them out by default).
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")

WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def fake_openai(request: httpx.Request) -> httpx.Response:
    """Chat completions as OpenAI answers them: a tool call first, then the answer."""
    messages = json.loads(request.content)["messages"]
    if messages[-1]["role"] == "user":
        call = {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
        }
        finish, usage = "tool_calls", {"prompt_tokens": 52, "completion_tokens": 14}
    else:
        message = {"role": "assistant", "content": "It is sunny in Paris, 24°C."}
        finish, usage = "stop", {"prompt_tokens": 80, "completion_tokens": 11}
    return httpx.Response(
        200,
        json={
            "id": f"chatcmpl-{len(messages)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {**usage, "total_tokens": sum(usage.values())},
        },
    )


def main() -> None:
    setup()  # dictConfig: "posthog_logging.spans" -> PosthogLogHandler
    provider = TracerProvider()  # the application's own provider; the global one is untouched
    provider.add_span_processor(LoggingSpanProcessor())
    OpenAIInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    tracer = provider.get_tracer("weather-app")
    client = openai.OpenAI(
        api_key="sk-fake", http_client=httpx.Client(transport=httpx.MockTransport(fake_openai))
    )

    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    with tracer.start_as_current_span("weather agent", attributes={"user.id": "user-42"}):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
        )
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        ) as tool:
            result = {"city": "Paris", "sky": "sunny", "celsius": 24}
            tool.set_attribute("gen_ai.tool.call.arguments", call.function.arguments)  # type: ignore[union-attr]
            tool.set_attribute("gen_ai.tool.call.result", json.dumps(result))
        messages += [
            reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
        ]
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    print(answer.choices[0].message.content)
    provider.shutdown()


if __name__ == "__main__":
    main()
