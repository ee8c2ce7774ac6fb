"""SpanJsonFormatter: the same data as PostHog gets, as JSON lines, and replayable."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from pathlib import Path

import pytest

import posthog_logging as pl
from posthog_logging import PosthogLogHandler, SpanJsonFormatter
from posthog_logging.cli import main as cli_main
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_span_records_become_one_json_object_per_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SpanJsonFormatter())
    logger = logging.getLogger("test.formatter.lines")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    when = dt.datetime(2025, 1, 1, 0, 0, 5, 999999, tzinfo=dt.timezone.utc)
    span = {
        "id": "1",
        "traceId": "2",
        "startTime": when,
        "input": {"odd": Unprintable(), "tuple": (1, 2)},
    }
    logger.info("llm call", extra={"span": span, "span_event": "span_started"})
    logger.info("thumbs", extra={"feedback": {"traceId": "2", "value": 1}})
    logger.info("plain %s", "record", extra={"order": 7})
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["span"]["startTime"] == "2025-01-01T00:00:05.999Z"
    assert first["span"]["input"] == {"odd": "<unrepresentable Unprintable>", "tuple": [1, 2]}
    assert first["span_event"] == "span_started" and first["message"] == "llm call"
    assert first["level"] == "INFO" and first["logger"] == "test.formatter.lines"
    assert second["feedback"] == {"traceId": "2", "value": 1}
    assert third == {"message": "plain record", "order": 7}


def test_replaying_a_formatter_file_sends_what_the_handler_sends(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_file = tmp_path / "spans.jsonl"
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(SpanJsonFormatter())
    live = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = logging.getLogger("test.formatter.replay")
    logger.handlers[:] = [file_handler, live]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with pl.span("agent", type="agent_run", logger=logger, metadata={"userId": "u9"}) as agent:
        with pl.generation("llm", model="m", provider="p", logger=logger, input="hi") as llm:
            llm.update(output="hello", usage={"inputTokens": 3, "outputTokens": 1})
        agent.event("note", output=1)
    live.close()
    file_handler.close()
    sent_live = sorted(capture_server.events, key=lambda event: event["uuid"])
    capture_server.clear()

    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(log_file)]) == 0
    replayed = sorted(capture_server.events, key=lambda event: event["uuid"])
    assert len(replayed) == len(sent_live) == 3  # generation, event span, trace
    assert replayed == sent_live  # same mapping, same timestamps, same uuids


def test_replay_keeps_media_when_told_as_the_handler_was(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A handler with redact_media=False sends the image; a replay of its SpanJsonFormatter
    # file must be able to send the same events (--no-redact-media), and redacts by default.
    image = "data:image/png;base64," + "iVBORw0KGgo" * 40
    log_file = tmp_path / "spans.jsonl"
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(SpanJsonFormatter())
    live = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, redact_media=False)
    logger = logging.getLogger("test.formatter.replay_media")
    logger.handlers[:] = [file_handler, live]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    content = [{"type": "image_url", "image_url": {"url": image}}]
    with pl.generation(
        "llm", model="m", logger=logger, input=[{"role": "user", "content": content}]
    ):
        pass
    live.close()
    file_handler.close()
    sent_live = sorted(capture_server.events, key=lambda event: event["uuid"])
    assert image in json.dumps(sent_live)

    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    for run, (flags, kept) in enumerate(((["--no-redact-media"], True), ([], False))):
        capture_server.clear()
        copy = tmp_path / f"copy{run}.jsonl"  # replay remembers what it sent from a file
        copy.write_bytes(log_file.read_bytes())
        arguments = ["replay", "--host", capture_server.url, *flags, str(copy)]
        assert cli_main(arguments) == 0
        replayed = sorted(capture_server.events, key=lambda event: event["uuid"])
        assert (replayed == sent_live) is kept
        assert (image in json.dumps(replayed)) is kept
