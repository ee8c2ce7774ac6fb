"""The dev server's trace trees and the ``posthog-logging`` command line."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from typing import Any

from posthog.request import post

from posthog_logging.cli import main
from posthog_logging.devserver import CaptureServer, render_trace_tree
from posthog_logging.transport import AI_BATCH_PATH

from .conftest import DUMMY_KEY

TRACE = "c" * 32


def trace_events() -> list[dict[str, Any]]:
    def event(name: str, ts: str, **props: Any) -> dict[str, Any]:
        return {
            "event": name,
            "distinct_id": "u",
            "timestamp": ts,
            "properties": {"$ai_trace_id": TRACE, **props},
        }

    return [
        event(
            "$ai_span",
            "2025-01-01T00:00:02.600Z",
            **{
                "$ai_span_id": "tool1",
                "$ai_span_name": "get_weather",
                "$ai_parent_id": "gen1",
                "$ai_latency": 0.5,
            },
        ),
        event(
            "$ai_span",
            "2025-01-01T00:00:03.000Z",
            **{
                "$ai_span_id": "bad1",
                "$ai_span_name": "flaky",
                "$ai_parent_id": TRACE,
                "$ai_latency": 0.1,
                "$ai_is_error": True,
                "error_message": "boom",
            },
        ),
        event(
            "$ai_generation",
            "2025-01-01T00:00:04.500Z",
            **{
                "$ai_generation_id": "gen1",
                "$ai_span_name": "llm",
                "$ai_model": "gpt-4o-mini",
                "$ai_parent_id": TRACE,
                "$ai_latency": 4.4,
                "$ai_input_tokens": 120,
                "$ai_output_tokens": 45,
            },
        ),
        event("$ai_trace", "2025-01-01T00:00:05.000Z", **{"$ai_span_name": "agent run"}),
    ]


def test_render_trace_tree_nests_by_parent_and_shows_errors() -> None:
    lines = render_trace_tree(trace_events()).splitlines()
    assert lines[0] == f"trace {TRACE}"
    assert lines[1].startswith("└── trace  agent run")
    assert lines[2].startswith("    ├── generation  llm  [gpt-4o-mini]  4.400s  tokens 120/45")
    assert lines[3].startswith("    │   └── span  get_weather  0.500s")
    assert lines[4].startswith("    └── span  flaky  0.100s  ERROR boom")
    assert len(lines) == 5


def test_server_records_gzip_and_plain_batches_in_order(capture_server: CaptureServer) -> None:
    events = trace_events()
    # The posthog package's own client function, on both routes, gzip on and off.
    post(DUMMY_KEY, capture_server.url, AI_BATCH_PATH, True, batch=events[:2])
    post(DUMMY_KEY, capture_server.url, "/batch/", False, batch=events[2:])
    requests = capture_server.requests
    assert [(r.path, r.gzipped, r.api_key) for r in requests] == [
        ("/i/v0/ai/batch/", True, DUMMY_KEY),
        ("/batch/", False, DUMMY_KEY),
    ]
    assert [e["event"] for e in capture_server.events] == [e["event"] for e in events]


def test_main_help_lists_every_command(capsys: Any) -> None:
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    assert "dev-server" in out and "replay" in out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_dev_server_command_prints_the_tree_of_a_trace() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "posthog_logging", "dev-server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert process.stdout is not None
    try:
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        post(
            DUMMY_KEY,
            f"http://127.0.0.1:{port}",
            AI_BATCH_PATH,
            True,
            batch=trace_events(),
        )
        output = ""
        while "ERROR boom" not in output:
            output += lines.get(timeout=10)
        assert f"trace {TRACE}" in output
        assert "generation  llm  [gpt-4o-mini]" in output
        assert "ERROR boom" in output
    finally:
        process.terminate()
        process.wait(timeout=10)
