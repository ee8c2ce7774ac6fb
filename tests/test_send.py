"""``posthog-logging send``: JSON lines through a real subprocess pipe to the dev server."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from posthog_logging import PosthogLogHandler, SpanJsonFormatter
from posthog_logging.devserver import CaptureServer, ScriptedResponse
from posthog_logging.lines import StopSignals
from posthog_logging.send import LineSender

from .conftest import DUMMY_KEY
from .helpers import PATIENCE, blocked_in, wait_until

FORMATTER = SpanJsonFormatter()


def span_line(n: int, *, trace: int = 0, span_event: str = "span_ended") -> bytes:
    """One ``SpanJsonFormatter`` line: a tool span of trace ``trace``."""
    span = {
        "id": f"{n + 1:016x}",
        "traceId": f"{trace + 1:032x}",
        "parentSpanId": "f" * 16,
        "name": f"tool {n}",
        "type": "tool_call",
        "startTime": 1735689600.0,
        "endTime": 1735689601.5,
        "input": {"n": n},
        "metadata": {"userId": "u1"},
    }
    record = logging.LogRecord("app.ai", logging.INFO, "", 0, "tool", None, None)
    record.__dict__.update(span=span, span_event=span_event)
    return FORMATTER.format(record).encode() + b"\n"


def start_send(server: CaptureServer, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, POSTHOG_HOST=server.url, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "posthog_logging", "send", *args],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 60, status: int = 0) -> str:
    if process.stdin is not None:
        process.stdin.close()  # EOF, if the test did not end the input itself
        process.stdin = None
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == status, stderr.decode()
    return stderr.decode()


def read_counts(stderr: str) -> tuple[int, int]:
    """(lines, records) from the summary ``send`` prints at exit."""
    match = re.search(r"read (\d+) lines, (\d+) records", stderr)
    assert match, stderr
    return int(match[1]), int(match[2])


def span_ids(server: CaptureServer) -> list[str]:
    return [e["properties"]["$ai_span_id"] for e in server.events]


def write_bursts(pipe: IO[bytes], lines: list[bytes], burst: int, pause: float) -> None:
    for start in range(0, len(lines), burst):
        pipe.write(b"".join(lines[start : start + burst]))
        pipe.flush()
        time.sleep(pause)


@pytest.mark.slow  # a subprocess
def test_ten_thousand_lines_in_bursts_are_delivered_once_and_eof_ends_it(
    capture_server: CaptureServer,
) -> None:
    lines = [span_line(n, trace=n % 50) for n in range(10_000)]
    bad = [b"not json\n", b"[1, 2]\n", b'{"neither": "span nor event"}\n']
    for position, line in zip((10, 5_000, 9_990), bad, strict=True):
        lines.insert(position, line)
    process = start_send(capture_server, "-")
    assert process.stdin is not None
    write_bursts(process.stdin, lines, burst=1_000, pause=0.05)
    process.stdin.close()
    stderr = finish(process)
    ids = span_ids(capture_server)
    assert len(ids) == 10_000
    assert set(ids) == {f"{n + 1:016x}" for n in range(10_000)}
    assert len({e["uuid"] for e in capture_server.events}) == 10_000
    assert read_counts(stderr) == (10_003, 10_000)
    assert "3 bad lines" in stderr and "not_json" in stderr and "line 11:" in stderr
    assert "10000 sent" in stderr


@pytest.mark.slow  # a subprocess
def test_sigterm_mid_stream_loses_nothing_already_read(capture_server: CaptureServer) -> None:
    lines = [span_line(n) for n in range(20_000)]
    process = start_send(capture_server, "-")
    assert process.stdin is not None
    stdin = process.stdin

    def write() -> None:
        # A first part, then (only once the signal went) the rest: however slow the
        # machine, the signal comes mid-stream.  The consumer stopped (or the test
        # closed the pipe): the rest is never read.
        with contextlib.suppress(OSError, ValueError):
            write_bursts(stdin, lines[:1_000], burst=100, pause=0.02)
            signalled.wait(PATIENCE)
            write_bursts(stdin, lines[1_000:], burst=100, pause=0.02)

    signalled = threading.Event()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    capture_server.wait_for_events(100, timeout=PATIENCE)  # reading and delivering
    process.send_signal(signal.SIGTERM)
    signalled.set()
    stderr = finish(process)
    writer.join(timeout=PATIENCE)
    _, records = read_counts(stderr)
    assert 100 <= records < 20_000, stderr  # it was stopped mid-stream
    assert sorted(span_ids(capture_server)) == [f"{n + 1:016x}" for n in range(records)]


@pytest.mark.slow  # a subprocess
def test_follow_mode_reads_a_growing_and_rotated_file(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    process = start_send(capture_server, str(path), "--flush-interval", "0.2")
    with open(path, "ab") as handle:
        write_bursts(handle, [span_line(n) for n in range(300)], burst=100, pause=0.05)
        capture_server.wait_for_events(300, timeout=30)  # it follows this file now
        handle.write(span_line(300))  # after the last read, just before the rotation
    path.rename(tmp_path / "spans.jsonl.1")
    with open(path, "ab") as handle:
        write_bursts(handle, [span_line(n) for n in range(301, 600)], burst=100, pause=0.05)
    capture_server.wait_for_events(600, timeout=30)
    process.send_signal(signal.SIGTERM)
    stderr = finish(process)
    assert sorted(span_ids(capture_server)) == [f"{n + 1:016x}" for n in range(600)]
    assert read_counts(stderr) == (600, 600)


@pytest.mark.slow  # a subprocess
def test_already_mapped_events_keep_their_uuid(capture_server: CaptureServer) -> None:
    event = {
        "event": "$ai_generation",
        "distinct_id": "u9",
        "properties": {"$ai_trace_id": "t1", "$ai_model": "m"},
        "timestamp": "2025-01-01T00:00:00.000Z",
        "uuid": "0190b3a2-0000-7000-8000-000000000001",
    }
    process = start_send(capture_server, "-")
    assert process.stdin is not None
    process.stdin.write(json.dumps(event).encode() + b"\n")
    process.stdin.close()
    finish(process)
    (received,) = capture_server.events
    assert received["uuid"] == event["uuid"]
    assert received["properties"]["$ai_model"] == "m"


@pytest.mark.slow  # a subprocess
def test_without_an_api_key_send_refuses_to_start(capture_server: CaptureServer) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "POSTHOG_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "posthog_logging", "send", "-"],
        env=environment,
        input=span_line(1),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"no API key" in result.stderr


def spilled_events(directory: Path) -> Iterator[dict[str, Any]]:
    for file in directory.glob("*.jsonl*"):
        for line in file.read_text().splitlines():
            yield json.loads(line)


@pytest.mark.slow  # a subprocess
def test_undeliverable_lines_are_spilled_and_reported(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    capture_server.script(*[ScriptedResponse(status=400)] * 50)
    process = start_send(capture_server, "-", "--spill-dir", str(tmp_path))
    assert process.stdin is not None
    process.stdin.write(b"".join(span_line(n) for n in range(30)))
    process.stdin.close()
    stderr = finish(process, status=1)  # spilled is not delivered
    assert "30 spilled" in stderr
    assert len(list(spilled_events(tmp_path))) == 30


@pytest.mark.slow  # a subprocess
def test_send_is_listed_in_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "posthog_logging", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "send" in result.stdout


def test_reading_pauses_while_the_handler_is_behind(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    """A server that never answers: send stops reading instead of dropping, and what it
    read is spilled at the stop."""
    capture_server.answer_by_default(ScriptedResponse(hang=True))
    handler = PosthogLogHandler(
        api_key=DUMMY_KEY,
        host=capture_server.url,
        max_buffer_events=40,
        spill_dir=tmp_path,
        shutdown_timeout=1.0,
        request_timeout=600,  # the batch in flight stays in flight (and held)
    )
    consumed: list[int] = []

    def source(stop: StopSignals) -> Iterator[bytes]:
        """Like ``pipe_lines``: nothing more is read once a stop signal came."""
        for n in range(1_000):
            if stop.stopped:
                return
            consumed.append(n)
            yield span_line(n).rstrip(b"\n")

    with StopSignals() as stop:
        sender = LineSender(handler, stop, io.StringIO())
        reader = threading.Thread(target=sender.send, args=(source(stop),), daemon=True)
        reader.start()

        # Over half of max_buffer_events held, the reader waits with one more line in
        # hand.  Once the listener has mapped all it was handed (a record in its hand
        # is neither queued nor buffered: the check may let one more through), nothing
        # can shrink the backlog (the server never answers) and the reader never reads
        # on, however long it is given.
        def paused() -> bool:
            stats = handler.stats()
            return (
                stats["received"] > 20
                and stats["mapped"] == stats["received"]
                and blocked_in(reader, LineSender._wait_for_room)
            )

        wait_until(paused, "reading to pause")
        held = handler.stats()["received"]
        assert len(consumed) == held + 1
        time.sleep(0.5)  # time to read on, for a reader that does not pause
        assert (len(consumed), handler.stats()["received"]) == (held + 1, held)
        assert held < 40  # about half the buffer: well before its bound
        stop.stopped = True
        reader.join(timeout=PATIENCE)
    handler.close()
    assert handler.stats()["dropped"] == {}
    assert sender.report.records == len(consumed)
    assert len(list(spilled_events(tmp_path))) == len(consumed)
