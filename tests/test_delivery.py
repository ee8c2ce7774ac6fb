"""Delivery over a link with a round trip: requests in flight at once, back-pressure,
deadlines that add up, refusals reported when spilled, and replay through the same
sender.  Real HTTP against the dev server with ``latency``."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import posthog_logging
from posthog_logging.cli import main as cli_main
from posthog_logging.devserver import CaptureServer, ScriptedResponse
from posthog_logging.encoding import MAX_EVENT_BYTES

from .conftest import DUMMY_KEY, RecordCollector
from .helpers import (
    PATIENCE,
    dead_url,
    handler_for,
    returns_in_time,
    span_ids,
    tool_span,
    wait_until,
)


def test_requests_overlap_up_to_max_in_flight() -> None:
    with CaptureServer(latency=0.2) as server:
        handler, log = handler_for(server.url, "overlap", flush_at=5, flush_interval=60)
        for n in range(200):
            log.info("x", extra={"span": tool_span(n)})
        handler.flush()
        assert span_ids(server.events) == Counter(f"{n:016x}" for n in range(200))
        assert server.max_in_flight == 4  # the default max_in_flight, all busy at once
        handler.close()


def test_max_in_flight_one_sends_one_request_at_a_time() -> None:
    with CaptureServer(latency=0.05) as server:
        handler, log = handler_for(server.url, "serial", flush_at=5, max_in_flight=1)
        for n in range(100):
            log.info("x", extra={"span": tool_span(n)})
        handler.close()
        assert len(server.events) == 100
        assert server.max_in_flight == 1


def test_batches_grow_with_the_backlog_within_the_caps() -> None:
    with CaptureServer(latency=0.1) as server:
        handler, log = handler_for(server.url, "grow", flush_at=20)
        for n in range(3000):
            log.info("x", extra={"span": tool_span(n)})
        handler.close()
        sizes = [len(request.batch) for request in server.requests]
        assert sum(sizes) == 3000
        assert max(sizes) > 20  # a backlog goes in bigger requests than flush_at
        assert max(sizes) <= 1000  # MAX_REQUEST_EVENTS
        assert len(sizes) < 3000 // 20


@pytest.mark.slow
def test_a_429_storm_drops_to_one_request_in_flight_and_recovers() -> None:
    storm = 5
    with CaptureServer(latency=0.1) as server:
        server.script(*[ScriptedResponse(status=429, headers={"Retry-After": "0.3"})] * storm)
        handler, log = handler_for(server.url, "storm", flush_at=1, retry_max_delay=0.2)
        count = 300
        for n in range(count):  # a steady trickle: ~20 spans per round trip
            log.info("x", extra={"span": tool_span(n)})
            time.sleep(0.005)
        handler.close()
        requests = server.requests
        assert span_ids(server.events) == Counter(f"{n:016x}" for n in range(count))
        assert [r.status for r in requests[:storm]] == [429] * storm
        # The first wave (up to 4 at once) is refused; each refusal halves the
        # requests allowed in flight, so what follows the storm goes alone ...
        wave = max(r.in_flight for r in requests[:4])
        assert wave > 1
        after_wave = [r for r in requests if r.index >= wave]
        assert [r.in_flight for r in after_wave[: storm - wave + 1]] == [1] * (storm - wave + 1)
        # ... after waiting out Retry-After (0.3 s) each time ...
        refused = [r for r in requests if r.status == 429]
        for before, after in zip(refused[wave - 1 :], after_wave[: storm - wave + 1], strict=True):
            assert after.received_at - before.received_at >= 0.1 + 0.3 - 0.02
        # ... and successes let the requests in flight grow back to four.
        assert max(r.in_flight for r in requests[storm:]) == 4
        assert handler.stats()["retried"] == storm


@pytest.mark.slow
def test_one_wave_of_concurrent_failures_backs_off_once() -> None:
    with CaptureServer(latency=0.1) as server:
        server.script(*[ScriptedResponse(status=503)] * 4)
        # One failed round pauses 1-2 s (the base delay, jittered); four rounds would
        # pause 2**3 times that, 8-16 s: so far apart that no machine blurs them.
        handler, log = handler_for(
            server.url, "wave", flush_at=5, retry_base_delay=2.0, retry_max_delay=600
        )
        for n in range(400):
            log.info("x", extra={"span": tool_span(n)})
        handler.close()
        requests = server.requests
        refused = [r for r in requests if r.status == 503]
        assert max(r.in_flight for r in refused) == 4  # all four refused in one round
        last_refusal = max(r.received_at for r in refused)
        following = min(r.received_at for r in requests if r.received_at > last_refusal)
        assert 1.0 - 0.1 <= following - last_refusal < 8.0  # one round's pause, not four
        assert span_ids(server.events) == Counter(f"{n:016x}" for n in range(400))


@pytest.mark.slow
def test_no_request_leaves_after_close_returned(capture_server: CaptureServer) -> None:
    # A 413 halves the batch; the first half is answered (200) only after close()
    # gave up on it, and the second half must not be posted then.
    capture_server.script(ScriptedResponse(status=413), ScriptedResponse(delay=5.0))
    before = set(threading.enumerate())
    handler, log = handler_for(capture_server.url, "after_close", shutdown_timeout=0.5)
    for n in range(20):
        log.info("x", extra={"span": tool_span(n)})
    wait_until(
        lambda: len(capture_server.requests) == 1 and capture_server.in_flight == 1,
        "the first half to be in flight",
    )
    senders = [t for t in set(threading.enumerate()) - before if "sender" in t.name]
    handler.close()
    closed_at = time.time()
    # The premise: close() gave up while the first half was in flight.
    assert capture_server.in_flight == 1, "the machine took 5 s to close: premise missed"
    # Once its answer came and the senders stopped, nothing more can leave.
    for sender in senders:
        sender.join(PATIENCE)
        assert not sender.is_alive()
    late = [r for r in capture_server.requests if r.received_at > closed_at]
    assert late == []
    assert [len(r.batch) for r in capture_server.requests] == [20, 10]
    assert handler.stats()["dropped"] == {"shutdown_deadline": 20}  # in flight: not known sent


def test_a_refused_batch_is_reported_even_when_spilled(
    tmp_path: Path, capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    capture_server.answer_by_default(
        ScriptedResponse(status=401, body=f'{{"detail": "invalid API key {DUMMY_KEY}"}}')
    )
    handler, log = handler_for(capture_server.url, "refused", spill_dir=tmp_path, flush_at=5)
    for n in range(20):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    assert handler.stats()["spilled"] == 20
    assert len(capture_server.requests) == 4
    messages = [r.getMessage() for r in library_logs.records if r.levelno >= logging.WARNING]
    refusals = [m for m in messages if "HTTP 401" in m]
    assert len(refusals) == 1  # once, not once per batch
    assert "invalid API key" in refusals[0] and str(tmp_path) in refusals[0]
    assert all(DUMMY_KEY not in m for m in messages)


@pytest.mark.slow
def test_close_after_another_threads_flush_keeps_its_own_budget(
    capture_server: CaptureServer,
) -> None:
    # A worker thread's flush() gives up after flush_timeout; the application's
    # close() on the main thread then still has all of shutdown_timeout.
    capture_server.script(*[ScriptedResponse(delay=3.3)] * 4)  # a slow patch, then fast again
    handler, log = handler_for(
        capture_server.url, "budget", flush_at=5, flush_timeout=2.0, shutdown_timeout=3.0
    )
    for n in range(200):
        log.info("x", extra={"span": tool_span(n)})
    worker = threading.Thread(target=handler.flush)  # e.g. a request-teardown flush
    worker.start()
    worker.join()
    handler.close()
    assert handler.stats()["sent"] == 200
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(200))


EXIT_PROGRAM = """
import json, logging, sys, time
from posthog_logging import PosthogLogHandler
options = json.loads(sys.argv[2])
handler = PosthogLogHandler(api_key="phc_exit", host=sys.argv[1], **options)
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
for n in range(500):
    log.info("x", extra={"span": {"id": f"{n:016x}", "traceId": "1" * 32, "name": "t",
                                   "parentSpanId": "2" * 16, "type": "tool_call",
                                   "startTime": 1.0, "endTime": 2.0}})
time.sleep(0.2)  # requests are now hanging
print(time.monotonic(), flush=True)
"""


#: Timeouts that would keep a hanging exit waiting far past PATIENCE: only the
#: shutdown_timeout under test can end it in time.
NEVER = {"request_timeout": 600.0, "flush_timeout": 600.0}


def exit_against_a_hanging_server(
    server: CaptureServer, options: dict[str, float]
) -> tuple[float, str]:
    """Seconds from the program's return to its exit, and its stderr.  The exit must
    come within PATIENCE, although the server never answers."""
    server.answer_by_default(ScriptedResponse(hang=True))
    process = subprocess.Popen(
        [sys.executable, "-c", EXIT_PROGRAM, server.url, json.dumps({**NEVER, **options})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    returned = float(process.stdout.readline())  # the program is done: exit begins
    process.wait(timeout=PATIENCE)
    exited = time.monotonic()
    assert process.returncode == 0
    assert server.max_in_flight >= 1
    return exited - returned, process.stderr.read()


@pytest.mark.slow
@pytest.mark.parametrize("shutdown_timeout", [None, 2.0])
def test_exit_against_a_hanging_server_stays_within_shutdown_timeout(
    capture_server: CaptureServer, shutdown_timeout: float | None
) -> None:
    options = {} if shutdown_timeout is None else {"shutdown_timeout": shutdown_timeout}
    took, stderr = exit_against_a_hanging_server(capture_server, options)
    # It used its shutdown_timeout (10 s by default), not its request or flush timeouts.
    assert took >= (10.0 if shutdown_timeout is None else shutdown_timeout)
    assert "closed with dropped events {'shutdown_deadline': 500}" in stderr
    assert "listener" not in stderr  # it was idle: flush() had mapped everything


@pytest.mark.slow
def test_flush_then_close_at_exit_take_shutdown_timeout_together(
    capture_server: CaptureServer,
) -> None:
    # logging.shutdown() at exit: flush() (flush_timeout is 600 s) then close(), 1 s in
    # all: an exit within PATIENCE (exit_against_a_hanging_server) shows flush() took
    # no budget of its own.
    _took, stderr = exit_against_a_hanging_server(capture_server, {"shutdown_timeout": 1.0})
    assert "closed with dropped events {'shutdown_deadline': 500}" in stderr


def test_close_with_a_mapping_backlog_stays_within_shutdown_timeout(
    capture_server: CaptureServer,
) -> None:
    # Each record takes the listener at least 1 ms (its mask sleeps), so 3,000 take
    # at least 3 s, on any machine: far more than close()'s 0.5 s.  The records it
    # did not reach are counted as dropped, not mapped on the closing thread past
    # the deadline.
    capture_server.answer_by_default(ScriptedResponse(hang=True))

    def slow_mask(value: object) -> object:
        time.sleep(0.001)
        return value

    handler, log = handler_for(
        capture_server.url,
        "backlog",
        shutdown_timeout=0.5,
        mask=slow_mask,
        request_timeout=600,  # only close()'s deadline ends the requests
    )
    for n in range(3_000):
        log.info("x", extra={"span": tool_span(n, input="q")})
    returns_in_time(handler.close)
    # The record the listener was masking at the deadline is dropped once its mask
    # returns (the sender was given up): wait until every record is accounted for.
    wait_until(
        lambda: sum(handler.stats()["dropped"].values()) == 3_000, "every record accounted for"
    )
    stats = handler.stats()
    assert stats["mapped"] < 3_000
    # Records never mapped, and the events of those mapped (the server hangs).
    assert stats["dropped"] == {
        "unmapped_at_deadline": 3_000 - stats["mapped"],
        "shutdown_deadline": stats["mapped"],
    }


def spill_from_a_dead_server(tmp_path: Path, count: int, random_input: int = 0) -> None:
    """Spill ``count`` spans, each with ``random_input`` random bytes (as hex) of input."""
    handler, log = handler_for(dead_url(), "spill", spill_dir=tmp_path, shutdown_timeout=0.3)
    for n in range(count):
        log.info("x", extra={"span": tool_span(n, input=os.urandom(random_input).hex())})
    handler.close()
    assert handler.stats()["spilled"] == count


def test_replay_halves_a_batch_on_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spill_from_a_dead_server(tmp_path, 40, random_input=3000)
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    # gzip takes random hex to about half: some three events fit a request.
    with CaptureServer(max_body_bytes=12_000) as server:
        assert cli_main(["replay", "--host", server.url, str(tmp_path)]) == 0
        assert span_ids(server.events) == Counter(f"{n:016x}" for n in range(40))
        statuses = Counter(r.status for r in server.requests)
        assert statuses[413] > 0
        assert max(len(r.batch) for r in server.requests if r.accepted) < 40
    assert list(tmp_path.iterdir()) == []


def test_replay_shrinks_an_oversize_event(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill_from_a_dead_server(tmp_path, 2)
    (spill,) = tmp_path.glob("*.jsonl")
    lines = [json.loads(line) for line in spill.open()]
    lines[0]["properties"]["$ai_input_state"] = "w" * (MAX_EVENT_BYTES + 500_000)
    spill.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    events = {e["properties"]["$ai_span_id"]: e for e in capture_server.events}
    assert sorted(events) == [f"{0:016x}", f"{1:016x}"]
    shrunk = events[f"{0:016x}"]
    assert len(json.dumps(shrunk, separators=(",", ":"))) <= MAX_EVENT_BYTES
    assert "truncated" in shrunk["properties"]["$ai_input_state"]


def test_replay_retries_what_the_listener_retries(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill_from_a_dead_server(tmp_path, 5)
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    # A 503 and a 429 are tried again (after Retry-After); a 400 is not.
    capture_server.script(
        ScriptedResponse(status=503),
        ScriptedResponse(status=429, headers={"Retry-After": "0.2"}),
        ScriptedResponse(status=400, body='{"detail": "bad request"}'),
    )
    started = time.monotonic()
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 1
    assert time.monotonic() - started >= 0.2
    assert [r.status for r in capture_server.requests] == [503, 429, 400]
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # kept for the next replay
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(5))


def test_replay_checks_span_event_as_the_handler_does(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    lines = [
        {"time": "2025-01-01T00:00:01.000Z", "span_event": "span_exploded", "span": tool_span(1)},
        {"time": "2025-01-01T00:00:01.000Z", "span_event": "span_ended", "span": tool_span(2)},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(path)]) == 0
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{2:016x}"]


# ------------------------------------------------- public posthog names only


def private_posthog_names(source: str) -> list[str]:
    """``posthog`` names starting with ``_`` that ``source`` reaches for: imported
    from a posthog module, read as an attribute of one, or through getattr."""
    tree = ast.parse(source)
    modules: set[str] = set()  # local names bound to posthog modules or objects
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "posthog":
                    modules.add((alias.asname or alias.name).split(".")[0])
                    found.extend(part for part in alias.name.split(".") if _private(part))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "posthog":
            found.extend(part for part in (node.module or "").split(".") if _private(part))
            for alias in node.names:
                modules.add(alias.asname or alias.name)
                if _private(alias.name):
                    found.append(alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and _rooted(node, modules):
            found.append(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) >= 2
            and _rooted(node.args[0], modules)
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(node.args[1].value)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _rooted(node: ast.expr, names: set[str]) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in names


def test_the_check_finds_private_posthog_names() -> None:
    borrowed = textwrap.dedent("""
        from posthog import request as posthog_request
        import posthog.request
        from posthog.request import _session
        session = getattr(posthog_request, "_get_session", None)
        other = posthog.request._session
        fine = posthog_request.USER_AGENT
    """)
    assert sorted(private_posthog_names(borrowed)) == ["_get_session", "_session", "_session"]


def test_the_package_uses_no_private_posthog_name() -> None:
    package = Path(posthog_logging.__file__).parent
    used = {
        str(path.relative_to(package)): names
        for path in sorted(package.rglob("*.py"))
        if (names := private_posthog_names(path.read_text(encoding="utf-8")))
    }
    assert used == {}
