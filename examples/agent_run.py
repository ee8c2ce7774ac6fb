"""The main example: an agent answers a question with a model and a tool.

It records an agent run (the trace), two model generations with messages,
model, provider and token usage, a tool call, and one failing tool call that
the agent recovers from, all through ``logging`` configured by ``dictConfig``.
Run it with no PostHog account: it then prints the trace it sent.  Against
``posthog-logging dev-server`` it prints the address of the run in the dev
server's trace viewer.

    python examples/agent_run.py
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import posthog_logging as pl
from example_support import setup

WEATHER = {"paris": {"tempC": 22, "conditions": "sunny"}}


@pl.traced(type="tool_call", name="tool: get_weather")
def get_weather(city: str) -> dict[str, Any]:
    if city.lower() not in WEATHER:
        raise LookupError(f"no weather station in {city!r}")
    return WEATHER[city.lower()]


def fake_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Stands in for a chat completion API: asks for a tool, then answers."""
    last = messages[-1]
    if last["role"] == "user":
        return {
            "text": "",
            "toolCalls": [
                {"toolCallId": "call_1", "toolName": "get_weather", "args": {"city": "Atlantis"}},
                {"toolCallId": "call_2", "toolName": "get_weather", "args": {"city": "Paris"}},
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 18},
        }
    weather = json.loads(last["content"])
    return {
        "text": f"It is {weather['conditions']} in Paris, {weather['tempC']}°C.",
        "usage": {
            "prompt_tokens": 71,
            "completion_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 40},
        },
    }


def answer(question: str) -> tuple[str, str]:
    """The agent's reply, and the id of the trace that recorded it."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful weather assistant."},
        {"role": "user", "content": question},
    ]
    with pl.span(
        "agent run: weather-agent",
        type="agent_run",
        input=question,
        metadata={"userId": "user-123", "sessionId": "session-1"},
        tags=["example"],
    ) as agent:
        for step in range(3):
            with pl.generation(
                f"llm: step {step}",
                model="gpt-4o-mini",
                provider="openai",
                input=list(messages),
                parameters={"temperature": 0.2},
            ) as llm:
                reply = fake_model(messages)
                llm.update(
                    output={"text": reply["text"], "toolCalls": reply.get("toolCalls", [])},
                    usage=reply["usage"],
                    attributes={"finishReason": "stop"},
                )
            if not reply.get("toolCalls"):
                agent.update(output=reply["text"])
                return str(reply["text"]), agent.trace_id
            for call in reply["toolCalls"]:
                try:
                    result = get_weather(**call["args"])
                except LookupError:
                    continue  # recorded as a failed tool call; the agent uses the others
                messages.append({"role": "tool", "content": json.dumps(result)})
        raise RuntimeError("the agent gave up")


def where_to_read(trace_id: str) -> str:
    """Where to read the run in a browser: its page in a local dev server's viewer,
    else how to start one."""
    host = os.environ.get("POSTHOG_HOST", "").rstrip("/")
    if not os.environ.get("POSTHOG_API_KEY"):
        return (
            "To read this run in a browser: start `posthog-logging dev-server` in another "
            "terminal, run\n"
            "  POSTHOG_HOST=http://127.0.0.1:8765 POSTHOG_API_KEY=phc_local "
            "python examples/agent_run.py\n"
            "and open the address it prints."
        )
    if urlsplit(host).hostname in ("127.0.0.1", "localhost"):
        return f"Read this run in the dev server's trace viewer: {host}/traces/{trace_id}"
    return "Read this run in PostHog: LLM analytics, Traces."


def main() -> None:
    setup()
    reply, trace_id = answer("What's the weather in Paris?")
    print(reply)
    print(where_to_read(trace_id))


if __name__ == "__main__":
    main()
