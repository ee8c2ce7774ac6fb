"""The posthog.ai wrapper examples run for real, in their own process, against the dev server."""

from __future__ import annotations

import json

import pytest

from posthog_logging.devserver import CaptureServer

from .helpers import named, run_example, tree

pytestmark = pytest.mark.slow  # each test runs an example in a subprocess


def test_openai_tool_call_example(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "openai_tool_call.py")
    assert "sunny and 22°C in Paris" in result.stdout
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  weather agent")
    # Children of the root, in start order (millisecond times: the last two may tie).
    children = sorted(line[8:].split("  ")[0:2] for line in lines[2:])
    assert children == [
        ["generation", "llm: answer"],
        ["generation", "llm: pick tool"],
        ["span", "get_weather"],
    ]
    assert all(line.startswith(("    ├── ", "    └── ")) for line in lines[2:])
    pick = named(capture_server, "$ai_generation")["llm: pick tool"]
    assert pick["$ai_tools"][0]["function"]["name"] == "get_weather"
    tool_call = pick["$ai_output_choices"][0]["content"][0]
    assert tool_call["type"] == "function" and tool_call["function"]["name"] == "get_weather"
    assert {e["distinct_id"] for e in capture_server.events} == {"u-7"}


def test_openai_streaming_example(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "openai_streaming.py")
    assert "Streaming keeps users engaged" in result.stdout
    generation = named(capture_server, "$ai_generation")["llm: stream"]
    assert "Streaming keeps users engaged" in json.dumps(generation["$ai_output_choices"])
    assert generation["$ai_latency"] >= 0.15  # the first chunk came after 0.15 s
    assert generation["$ai_output_tokens"] == 7
    assert tree(capture_server).splitlines()[2].startswith("    └── generation  llm: stream")


def test_anthropic_example(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "anthropic_messages.py")
    assert "Bonjour, Paris !" in result.stdout
    (generation,) = named(capture_server, "$ai_generation").values()
    assert generation["$ai_provider"] == "anthropic"
    assert generation["$ai_cache_read_input_tokens"] == 100
    assert generation["$ai_session_id"] == "s-9"
    assert tree(capture_server).splitlines()[2].startswith("    └── generation  [claude")


def test_langchain_example(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "langchain_chain.py")
    assert "delivery guarantees" in result.stdout
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  support bot")
    assert lines[2].startswith("    └── span  RunnableSequence")
    assert any("generation  GenericFakeChatModel  [gpt-4o-mini]" in line for line in lines[3:])
    assert all(line.startswith("        ") for line in lines[3:])
