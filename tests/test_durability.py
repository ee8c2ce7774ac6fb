"""Durable delivery with ``spill_dir`` (issue 22): the journal survives ``kill -9``, a
new process resumes it, close() does not wait out an outage, a full disk raises
nothing and counts exactly, and replay leaves files that are not its own alone."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.cli import main as cli_main
from posthog_logging.devserver import CaptureServer, ScriptedResponse
from posthog_logging.spill import try_lock

from .conftest import DUMMY_KEY, RecordCollector
from .helpers import dead_url, handler_for, span_ids, tool_span

#: Logs ``tool_span``-like spans at a steady rate until killed, printing its pid first,
#: then "n wall-time" after each one is logged.
#: argv: host, spill_dir, spans per second, a span as JSON.
LOGGING_UNTIL_KILLED = """
import json, logging, os, sys, time
from posthog_logging import PosthogLogHandler

host, spill_dir, rate, template = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
handler = PosthogLogHandler(api_key="phc_test", host=host, spill_dir=spill_dir)
print("pid", os.getpid(), flush=True)
log = logging.getLogger("killed")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
started = time.monotonic()
n = 0
while True:
    span = json.loads(template)
    span["id"] = f"{n:016x}"
    log.info("x", extra={"span": span})
    print(n, time.time(), flush=True)
    n += 1
    time.sleep(max(0.0, started + n / rate - time.monotonic()))
"""


class KilledRun(NamedTuple):
    """What :func:`log_until_killed` saw: when each span was logged (wall clock), when
    the kill came, and the logging process's pid as it saw it."""

    logged: dict[int, float]
    killed_at: float
    pid: int

    def expected(self) -> Counter[str]:
        """The spans logged more than 0.5 s before the kill: each must be delivered once."""
        return Counter(f"{n:016x}" for n, at in self.logged.items() if at < self.killed_at - 0.5)


#: Runs a command as PID 1 of a new PID namespace, as a container's entry point runs.
AS_PID_1 = ["unshare", "--pid", "--fork", "--mount-proc"]


def pid_1_of(launcher: subprocess.Popen[str]) -> int:
    """The pid (in this namespace) of the process ``unshare --fork`` started."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    wait_for(lambda: children.read_text().split())
    (child,) = children.read_text().split()
    return int(child)


def log_until_killed(
    host: str, spill_dir: Path, spans: int, launcher: list[str] | None = None
) -> KilledRun:
    """Run :data:`LOGGING_UNTIL_KILLED` at 500 spans/s (under ``launcher``, when
    given) and SIGKILL the logging process once ``spans`` were logged."""
    template = json.dumps(tool_span(0))
    arguments = [host, str(spill_dir), "500", template]
    child = subprocess.Popen(
        [*(launcher or []), sys.executable, "-c", LOGGING_UNTIL_KILLED, *arguments],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    _, pid = child.stdout.readline().split()
    logging_process = pid_1_of(child) if launcher else child.pid
    logged: dict[int, float] = {}
    for line in child.stdout:
        number, at = line.split()
        logged[int(number)] = float(at)
        if len(logged) >= spans:
            break
    killed_at = time.time()
    os.kill(logging_process, signal.SIGKILL)
    rest, _ = child.communicate(timeout=60)
    for line in rest.splitlines():
        if len(line.split()) == 2:
            number, at = line.split()
            logged[int(number)] = float(at)
    return KilledRun(logged, killed_at, int(pid))


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("renamed_to_a_live_pid", [False, True])
def test_spans_of_a_process_killed_during_an_outage_are_delivered_by_the_next(
    tmp_path: Path, renamed_to_a_live_pid: bool
) -> None:
    spill_dir = tmp_path / "spill"
    with CaptureServer() as hanging:
        hanging.answer_by_default(ScriptedResponse(hang=True))
        run = log_until_killed(hanging.url, spill_dir, spans=1500)
    if renamed_to_a_live_pid:  # as an earlier version named its files: this pid is alive
        for number, segment in enumerate(sorted(spill_dir.glob("journal-*.jsonl"))):
            segment.rename(spill_dir / f"spill-{os.getpid()}-{number}-0000.jsonl.part")
    expected = run.expected()
    assert len(expected) >= 1000

    with CaptureServer() as healthy:
        handler = PosthogLogHandler(api_key=DUMMY_KEY, host=healthy.url, spill_dir=spill_dir)
        wait_for(lambda: len(healthy.events) >= len(expected))
        wait_for(lambda: not list(spill_dir.glob("*.jsonl*")))
        handler.close()
        received = healthy.events
    assert_each_delivered_once(received, expected)
    assert handler.stats()["resumed"] == len(received)
    assert list(spill_dir.iterdir()) == []


def assert_each_delivered_once(received: list[dict[str, Any]], expected: Counter[str]) -> None:
    by_uuid = Counter(event["uuid"] for event in received)
    assert set(by_uuid.values()) == {1}  # each once, as PostHog counts
    delivered = span_ids(received)
    assert {span: delivered[span] for span in expected} == expected


#: Resumes ``spill_dir`` (argv 2) against ``host`` (argv 1): prints its pid, waits for a
#: line on stdin, closes the handler and prints its stats.
RESUMING = """
import json, os, sys
from posthog_logging import PosthogLogHandler

handler = PosthogLogHandler(api_key="phc_test", host=sys.argv[1], spill_dir=sys.argv[2])
print(os.getpid(), flush=True)
sys.stdin.readline()
handler.close()
print(json.dumps(handler.stats()), flush=True)
"""


def unshare_refusal() -> str | None:
    """Why a new PID namespace cannot be had here (no ``unshare``, not permitted), or None."""
    try:
        probe = subprocess.run(
            [*AS_PID_1, "sh", "-c", "echo $$"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        return "unshare(1) is not installed"
    if probe.stdout.strip() != "1":
        return f"unshare --pid is not permitted here: {probe.stderr.strip()}"
    return None


@pytest.mark.slow
def test_a_container_restarted_as_pid_1_delivers_what_its_killed_predecessor_journaled(
    tmp_path: Path,
) -> None:
    refusal = unshare_refusal()
    if refusal is not None:
        pytest.skip(refusal)
    spill_dir = tmp_path / "spill"
    with CaptureServer() as hanging:
        hanging.answer_by_default(ScriptedResponse(hang=True))
        run = log_until_killed(hanging.url, spill_dir, spans=1500, launcher=AS_PID_1)
    assert run.pid == 1
    expected = run.expected()
    assert len(expected) >= 1000

    with CaptureServer() as healthy:
        successor = subprocess.Popen(
            [*AS_PID_1, sys.executable, "-c", RESUMING, healthy.url, str(spill_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert successor.stdout is not None
        assert int(successor.stdout.readline()) == 1  # the same pid as its predecessor
        wait_for(lambda: len(healthy.events) >= len(expected))
        wait_for(lambda: not list(spill_dir.glob("*.jsonl*")))
        stats_line, _ = successor.communicate("close\n", timeout=60)
        received = healthy.events
    assert_each_delivered_once(received, expected)
    assert json.loads(stats_line)["resumed"] == len(received)
    assert list(spill_dir.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["503", "hang"])
def test_close_during_an_outage_leaves_the_backlog_to_the_journal(
    tmp_path: Path, fault: str, library_logs: RecordCollector
) -> None:
    """A recycled worker in an outage: close() does not wait out the backoff (30 s
    here) nor the shutdown deadline (60 s); it leaves the backlog in the journal."""
    with CaptureServer() as server:
        answer = ScriptedResponse(hang=True) if fault == "hang" else ScriptedResponse(503)
        server.answer_by_default(answer)
        handler, log = handler_for(
            server.url,
            f"recycled_{fault}",
            spill_dir=tmp_path,
            flush_at=10,
            shutdown_timeout=60.0,
            retry_base_delay=30.0,
            retry_max_delay=30.0,
        )
        for n in range(50):
            log.info("x", extra={"span": tool_span(n)})
        wait_for(lambda: len(server.requests) >= 1)
        started = time.monotonic()
        handler.close()
        closing = time.monotonic() - started
        requests = len(server.requests)
    assert closing < 30.0  # not the backoff, not the deadline
    assert requests <= 4  # one round: no retry was waited for
    stats = handler.stats()
    assert stats["spilled"] == 50 and stats["dropped"] == {}
    left = [json.loads(line) for path in tmp_path.glob("journal-*.jsonl") for line in path.open()]
    assert span_ids(left) == Counter(f"{n:016x}" for n in range(50))
    said = [m for m in library_logs.messages(logging.WARNING) if "close() left 50 events" in m]
    assert len(said) == 1 and str(tmp_path) in said[0]


def test_journal_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    spill_dir = tmp_path / "spill"
    previous = os.umask(0o022)
    try:
        handler, log = handler_for(dead_url(), "private", spill_dir=spill_dir, shutdown_timeout=0.3)
        log.info("x", extra={"span": tool_span(1)})
        handler.close()
    finally:
        os.umask(previous)
    (journal,) = spill_dir.glob("*.jsonl")
    assert stat.S_IMODE(spill_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


#: Logs 400 spans of about 500 bytes against a dead server with a 64 KiB file-size
#: limit (EFBIG where a full disk gives ENOSPC), closes, prints stats() as JSON.
FULL_DISK = """
import json, logging, resource, signal, sys
from posthog_logging import PosthogLogHandler

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
handler = PosthogLogHandler(
    api_key="phc_test", host=sys.argv[1], spill_dir=sys.argv[2], shutdown_timeout=0.5
)
log = logging.getLogger("full")
log.addHandler(handler)
log.propagate = False
span = json.loads(sys.argv[3])
for n in range(400):
    span["id"] = f"{n:016x}"
    log.warning("x", extra={"span": span})
handler.flush()
handler.close()
print(json.dumps(handler.stats()))
"""


@pytest.mark.slow  # a subprocess
def test_a_full_disk_raises_nothing_and_counts_exactly(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill_dir = tmp_path / "spill"
    template = json.dumps(tool_span(0, input="i" * 300))
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, dead_url(), str(spill_dir), template],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stats = json.loads(result.stdout)
    kept = [
        line for path in spill_dir.glob("*.jsonl") for line in path.read_text().split("\n")[:-1]
    ]
    assert 0 < len(kept) < 400
    assert stats["spilled"] == len(kept)
    assert stats["spilled"] + sum(stats["dropped"].values()) == 400
    assert str(spill_dir) in result.stderr  # the failure is reported with its path

    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(spill_dir)]) == 0
    assert len(capture_server.events) == len(kept)
    assert list(spill_dir.iterdir()) == []


def test_replay_skips_a_torn_last_line_and_still_finishes_the_file(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    handler, log = handler_for(dead_url(), "torn", spill_dir=tmp_path, shutdown_timeout=0.3)
    for n in range(3):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    (journal,) = tmp_path.glob("*.jsonl")
    with journal.open("a") as cut:
        cut.write('{"event":"$ai_span","propert')  # a kill in the middle of a write
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(3))
    assert "0 malformed lines skipped, a torn last line skipped (done)" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_replay_of_a_mistyped_path_fails_loudly(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path / "nope.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "no such file" in out and "gone" not in out


def test_replay_leaves_an_application_log_as_it_was(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: ``replay app.jsonl`` deleted the application's log, non-span lines included."""
    log_file = tmp_path / "app.jsonl"
    lines = [json.dumps({"span_event": "span_ended", "span": tool_span(n)}) for n in range(3)]
    content = "\n".join([*lines, '{"message": "user logged in"}', "plain text"]) + "\n"
    log_file.write_text(content)
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert cli_main(["replay", "--host", capture_server.url, str(log_file)]) == 0
    assert log_file.read_text() == content
    with log_file.open("a") as more:  # the application goes on logging
        more.write(json.dumps({"span_event": "span_ended", "span": tool_span(3)}) + "\n")
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(4))
    (progress,) = (tmp_path / "state").rglob("*.sent")
    assert stat.S_IMODE(progress.stat().st_mode) == 0o600


def test_a_404_names_the_url_posted_and_never_the_key(
    capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    capture_server.answer_by_default(ScriptedResponse(status=404, body="Not Found"))
    handler, log = handler_for(capture_server.url + "/typo", "typo", flush_at=5)
    for n in range(5):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    messages = library_logs.messages(logging.WARNING)
    posted = capture_server.url + "/typo/i/v0/ai/batch/"
    assert any("HTTP 404 from " + posted in m for m in messages), messages
    assert all(DUMMY_KEY not in m for m in messages)
    # Without a spill directory the summary names none.
    assert "posthog-logging: closed with dropped events {'undeliverable': 5}" in messages


#: ``replay`` where no file can grow (a full disk: EFBIG under RLIMIT_FSIZE).
REPLAY_ON_A_FULL_DISK = """
import resource, signal, sys
from posthog_logging.cli import main

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
sys.exit(main(["replay", "--host", sys.argv[1], sys.argv[2]]))
"""


@pytest.mark.slow  # a subprocess
def test_replay_on_a_full_disk_sends_each_event_once_and_finishes(
    tmp_path: Path, capture_server: CaptureServer
) -> None:
    """Its progress cannot be written: it goes on with the progress in memory (and
    says so with the path) instead of sending the first batch again on every run."""
    handler, log = handler_for(dead_url(), "full_replay", spill_dir=tmp_path, shutdown_timeout=0.3)
    for n in range(250):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    (journal,) = tmp_path.glob("*.jsonl")
    result = subprocess.run(
        [sys.executable, "-c", REPLAY_ON_A_FULL_DISK, capture_server.url, str(tmp_path)],
        env=dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"cannot record delivered lines in {journal}.sent" in result.stdout
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(250))
    assert list(tmp_path.iterdir()) == []


#: Journals one span against a hanging server, forks a child that outlives it, and
#: prints the child's pid.  argv: host, spill_dir.
FORKED = """
import logging, os, sys, time
from posthog_logging import PosthogLogHandler

handler = PosthogLogHandler(api_key="phc_test", host=sys.argv[1], spill_dir=sys.argv[2])
log = logging.getLogger("forked")
log.addHandler(handler)
log.propagate = False
log.warning("x", extra={"span": {"id": "1" * 16, "traceId": "b" * 32, "type": "tool_call",
                                 "name": "t", "startTime": 1.0, "endTime": 2.0}})
handler.flush()
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_forked_child_does_not_keep_its_parents_journal_locked(tmp_path: Path) -> None:
    with CaptureServer() as hanging:
        hanging.answer_by_default(ScriptedResponse(hang=True))
        parent = subprocess.Popen(
            [sys.executable, "-c", FORKED, hanging.url, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            parent.kill()
            parent.wait(timeout=30)
            (segment,) = tmp_path.glob("journal-*.jsonl")
            with segment.open("rb") as journal:
                assert try_lock(journal.fileno())  # free for the next process to resume
        finally:
            os.kill(child, signal.SIGKILL)
