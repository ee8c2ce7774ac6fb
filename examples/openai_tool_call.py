"""One line of instrumentation: posthog's OpenAI wrapper, delivered through logging.

python examples/openai_tool_call.py

``OpenAI(posthog_client=pl.posthog_client())`` is posthog's own wrapper; each
call's ``$ai_generation`` becomes a record on the spans logger, and inside
``pl.span`` it lands in that trace.  The model's HTTP is answered by
``fake_models`` so this runs anywhere; with a real key drop ``http_client``.
"""

from __future__ import annotations

import json

from posthog.ai.openai import OpenAI

import posthog_logging as pl
from example_support import setup
from fake_models import openai_http_client

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pl.traced(type="tool_call")
def get_weather(city: str) -> str:
    return f"sunny, 22°C in {city}"


def main() -> None:
    setup()
    model_http = openai_http_client(
        [[("get_weather", {"city": "Paris"})], "It is sunny and 22°C in Paris."]
    )
    client = OpenAI(
        api_key="sk-example",
        posthog_client=pl.posthog_client(),
        http_client=model_http,
    )
    question = "What's the weather in Paris?"
    messages: list[dict[str, object]] = [{"role": "user", "content": question}]
    with pl.span(
        "weather agent", type="agent_run", input=question, metadata={"userId": "u-7"}
    ) as run:
        first = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=[WEATHER_TOOL],
            posthog_properties={"$ai_span_name": "llm: pick tool"},
        )
        call = first.choices[0].message.tool_calls[0]
        result = get_weather(**json.loads(call.function.arguments))
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        final = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            posthog_properties={"$ai_span_name": "llm: answer"},
        )
        answer = final.choices[0].message.content
        run.update(output=answer)
    print(answer)


if __name__ == "__main__":
    main()
