"""``posthog-logging send`` loses nothing handed to it: what is in the pipe at SIGTERM is
delivered, ``--state`` resumes a followed file where it stopped, and whatever it could
not deliver is named in its summary and its exit status."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from posthog_logging import SpanJsonFormatter
from posthog_logging.devserver import CaptureServer, ScriptedResponse

from .conftest import DUMMY_KEY
from .helpers import span_ids, tool_span

FORMATTER = SpanJsonFormatter()
#: Linux: how large a pipe may be made (fcntl F_SETPIPE_SZ), so more than one read
#: of ``send`` is waiting in it at SIGTERM.
F_SETPIPE_SZ = 1031


def span_line(n: int) -> bytes:
    record = logging.LogRecord("app.ai", logging.INFO, "", 0, "tool", None, None)
    record.__dict__.update(span=tool_span(n, input="i" * 500), span_event="span_ended")
    return FORMATTER.format(record).encode() + b"\n"


def send(server: CaptureServer, *args: str) -> subprocess.Popen[bytes]:
    environment = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, POSTHOG_HOST=server.url)
    return subprocess.Popen(
        [sys.executable, "-m", "posthog_logging", "send", "--flush-interval", "0.2", *args],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_events(server: CaptureServer, count: int) -> None:
    server.wait_for_events(count, timeout=60)
    assert len(server.events) >= count


@pytest.mark.slow
def test_sigterm_delivers_what_is_already_in_the_pipe(capture_server: CaptureServer) -> None:
    process = send(capture_server)
    assert process.stdin is not None
    fcntl.fcntl(process.stdin.fileno(), F_SETPIPE_SZ, 1024 * 1024)
    process.stdin.write(span_line(0))
    process.stdin.flush()
    wait_for_events(capture_server, 1)  # reading and delivering
    process.send_signal(signal.SIGSTOP)
    lines = [span_line(n) for n in range(1, 1001)]  # about 700 KB: many reads' worth
    process.stdin.write(b"".join(lines))
    process.stdin.flush()
    process.send_signal(signal.SIGTERM)  # the shipper stops the consumer ...
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(1001))


@pytest.mark.slow
def test_send_with_state_resumes_a_followed_file_where_it_stopped(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    source, state = tmp_path / "spans.jsonl", tmp_path / "state" / "send.json"
    source.write_bytes(b"".join(span_line(n) for n in range(50)))
    first = send(capture_server, str(source), "--state", str(state))
    wait_for_events(capture_server, 50)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr.decode()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    with source.open("ab") as more:
        more.write(b"".join(span_line(n) for n in range(50, 80)))
    second = send(capture_server, str(source), "--state", str(state))
    wait_for_events(capture_server, 80)
    time.sleep(0.5)  # anything sent twice would arrive meanwhile
    second.send_signal(signal.SIGTERM)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr.decode()
    assert b"read 30 lines" in stderr
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(80))


@pytest.mark.slow  # send in a subprocess
def test_events_not_delivered_are_counted_and_fail_the_exit_status(
    capture_server: CaptureServer,
) -> None:
    capture_server.answer_by_default(ScriptedResponse(status=400))
    process = send(capture_server)
    _, stderr = process.communicate(b"".join(span_line(n) for n in range(7)), timeout=60)
    assert process.returncode == 1
    assert b"7 events handed to it were not delivered (7 dropped)" in stderr
