"""Every example runs for real, in its own process, against the dev server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posthog_logging.devserver import CaptureServer

from .helpers import named, run_example, tree

pytestmark = pytest.mark.slow  # each test runs an example in a subprocess


def test_main_example_agent_run(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "agent_run.py")
    assert "It is sunny in Paris" in result.stdout
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  agent run: weather-agent")
    assert lines[2].startswith("    ├── generation  llm: step 0  [gpt-4o-mini]")
    assert "tokens 42/18" in lines[2]
    assert "ERROR no weather station in 'Atlantis'" in lines[3]
    assert lines[5].startswith("    └── generation  llm: step 1")
    generations = named(capture_server, "$ai_generation")
    step_one = generations["llm: step 1"]
    assert step_one["$ai_cache_read_input_tokens"] == 40
    assert step_one["$ai_input"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "You are a helpful weather assistant."}],
    }
    assert {e["distinct_id"] for e in capture_server.events} == {"user-123"}
    (trace,) = named(capture_server, "$ai_trace").values()
    assert trace["$ai_session_id"] == "session-1" and trace["example"] is True


@pytest.mark.parametrize("config_file", ["logging.yaml", "logging.json"])
def test_dictconfig_from_file(capture_server: CaptureServer, config_file: str) -> None:
    run_example(capture_server, "dictconfig_file.py", config_file)
    spans = named(capture_server, "$ai_span")
    assert sorted(spans) == ["shard 0", "shard 1", "shard 2"]
    assert spans["shard 2"]["$ai_output_state"] == {"documents": 300}
    expected_id = "batch-worker" if config_file.endswith("yaml") else None
    for event in capture_server.events:
        if expected_id:
            assert event["distinct_id"] == expected_id


def test_json_pipeline_keeps_the_file_and_adds_posthog(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.jsonl"
    run_example(capture_server, "json_pipeline.py", str(log_file))
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[0]["message"] == "checkout started" and lines[0]["cart_id"] == "c-42"
    span_lines = [line for line in lines if "span" in line]
    assert {line["span"]["name"] for line in span_lines} == {"recommend products", "llm"}
    generation = named(capture_server, "$ai_generation")["llm"]
    assert generation["$ai_provider"] == "anthropic"
    assert generation["$ai_input_tokens"] == 12


def test_chat_loop_with_tools(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "chat_loop.py")
    assert "92.0 EUR" in result.stdout
    generations = [e for e in capture_server.events if e["event"] == "$ai_generation"]
    assert len(generations) == 2
    definition = generations[0]["properties"]["$ai_tools"][0]["function"]
    assert definition["name"] == "convert_currency"
    assert definition["parameters"]["properties"]["to"] == {"type": "string"}
    assert generations[1]["properties"]["$ai_reasoning_tokens"] == 3
    tool = named(capture_server, "$ai_span")
    (tool_props,) = tool.values()
    assert tool_props["$ai_input_state"] == {"amount": 100, "to": "EUR"}
    assert tool_props["$ai_parent_id"] == tool_props["$ai_trace_id"]


def test_async_agent_parallel_tools(capture_server: CaptureServer) -> None:
    run_example(capture_server, "async_agent.py")
    lines = tree(capture_server).splitlines()
    searches = [line for line in lines if "span  search" in line]
    assert len(searches) == 3 and all(line.startswith("    ") for line in searches)
    assert sum("ERROR archive search timed out" in line for line in searches) == 1
    assert any(line.startswith("        └── span  mcp: summarise") for line in lines)


def test_streaming_generation_reports_time_to_first_token(capture_server: CaptureServer) -> None:
    run_example(capture_server, "streaming.py")
    generation = named(capture_server, "$ai_generation")["llm: stream"]
    assert 0.1 <= generation["$ai_time_to_first_token"] < generation["$ai_latency"]
    assert generation["$ai_output_choices"] == [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Streaming keeps users engaged."}],
        }
    ]
    assert generation["$ai_stream"] is True
    assert generation["$ai_stop_reason"] == "end_turn"


def test_workflow_steps(capture_server: CaptureServer) -> None:
    run_example(capture_server, "workflow.py")
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  workflow: fulfil order")
    assert [line.split("span  ")[1].split("  ")[0] for line in lines[2:]] == [
        "step: validate",
        "condition: needs review?",
        "branch taken",
        "sleep: wait for reviewer",
        "step: ship",
    ]


def test_rag_worker_one_trace_across_threads_and_processes(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "rag_worker.py")
    assert "worker answered" in result.stdout
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  request: refund question")
    assert lines[2].startswith("    ├── embedding  embed chunk  [text-embedding-3-small]")
    assert lines[3].startswith("    ├── embedding  embed chunk")
    assert lines[4].startswith("    └── span  dispatch to worker")
    assert lines[5].startswith("        └── span  worker: answer")
    assert lines[6].startswith("            └── generation  llm: answer  [claude-sonnet-4-5]")
    answer = named(capture_server, "$ai_generation")["llm: answer"]
    assert answer["$ai_cache_reporting_exclusive"] is False
    assert (answer["$ai_input_tokens"], answer["$ai_cache_read_input_tokens"]) == (430, 400)
    assert answer["$ai_stop_reason"] == "end_turn"
    assert answer["$session_id"] == "replay-5f1c"
    assert answer["$ai_session_id"] == "support-chat-12"
    assert {e["distinct_id"] for e in capture_server.events} == {"reader-3"}


def test_otel_openai_through_logging(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "otel_openai.py")
    assert "It is sunny in Paris" in result.stdout
    lines = tree(capture_server).splitlines()
    assert lines[1].startswith("└── trace  weather agent")
    assert lines[2].startswith("    ├── generation  chat gpt-4o-mini  [gpt-4o-mini-2024-07-18]")
    assert "tokens 52/14" in lines[2]
    assert lines[3].startswith("    ├── span  execute_tool get_weather")
    assert "tokens 80/11" in lines[4]
    (tool,) = named(capture_server, "$ai_span").values()
    assert tool["$ai_input_state"] == {"city": "Paris"}
    trace_id = tool["$ai_trace_id"]
    assert len(trace_id) == 32 and all(
        e["properties"]["$ai_trace_id"] == trace_id for e in capture_server.events
    )
    assert {e["distinct_id"] for e in capture_server.events} == {"user-42"}


def _one_trace(server: CaptureServer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The single ``$ai_trace`` the server received, and every event of its trace."""
    (trace,) = (e for e in server.events if e["event"] == "$ai_trace")
    trace_id = trace["properties"]["$ai_trace_id"]
    return trace, [e for e in server.events if e["properties"].get("$ai_trace_id") == trace_id]


def test_loguru_and_structlog_reach_the_handler(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "loguru_structlog.py")
    assert "arrives tomorrow" in result.stdout
    trace, events = _one_trace(capture_server)
    assert trace["properties"]["$ai_span_name"] == "support bot"
    assert len(events) == len(capture_server.events) == 3  # loguru: root + llm; structlog: feedback
    generation = named(capture_server, "$ai_generation")["llm"]
    assert generation["$ai_parent_id"] == trace["properties"]["$ai_trace_id"]
    assert (generation["$ai_input_tokens"], generation["$ai_output_tokens"]) == (14, 11)
    (feedback,) = (e for e in events if e["event"] == "$ai_feedback")
    assert {e["distinct_id"] for e in events} == {"u-9"}
    assert "└── feedback" in tree(capture_server)
    assert feedback["properties"]["$ai_trace_id"] == trace["properties"]["$ai_trace_id"]


def test_log_shipper_delivers_json_lines_through_send(capture_server: CaptureServer) -> None:
    result = run_example(capture_server, "log_shipper.py")
    assert "posthog-logging send exited with 0" in result.stdout
    trace, events = _one_trace(capture_server)
    assert trace["properties"]["$ai_span_name"] == "nightly summaries"
    generations = named(capture_server, "$ai_generation")
    assert sorted(generations) == ["summarize 0", "summarize 1", "summarize 2"]
    assert len(events) == len(capture_server.events) == 4
    assert {g["$ai_parent_id"] for g in generations.values()} == {
        trace["properties"]["$ai_trace_id"]
    }
    assert {e["distinct_id"] for e in events} == {"batch-job"}
    assert "4 sent" in result.stderr  # send's summary at EOF: everything it read went out
