"""Faults, for real: a capture server that fails on cue, a dead port, oversize events,
spill files and replay.  Every event must arrive exactly once or be accounted for."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from posthog_logging.cli import main as cli_main
from posthog_logging.devserver import CaptureServer, ScriptedResponse
from posthog_logging.encoding import EncodedEvent
from posthog_logging.sender import EventBuffer

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


def test_transient_faults_are_retried_and_everything_arrives_once(
    capture_server: CaptureServer,
) -> None:
    capture_server.script(
        ScriptedResponse(status=503),
        ScriptedResponse(status=429, headers={"Retry-After": "0.2"}),
        ScriptedResponse(drop_connection=True),
        ScriptedResponse(status=500),
        ScriptedResponse(status=408),
    )
    handler, log = handler_for(
        capture_server.url, "transient", flush_at=10, retry_base_delay=0.05, retry_max_delay=0.2
    )
    for n in range(50):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(50))
    stats = handler.stats()
    assert stats["retried"] == 5
    assert stats["sent"] == 50
    assert stats["dropped"] == {}


@pytest.mark.slow  # seconds of retries against a server with latency
def test_mixed_faults_with_concurrent_senders_arrive_exactly_once() -> None:
    rng = random.Random(7)
    faults = [
        rng.choice(
            [
                ScriptedResponse(status=500),
                ScriptedResponse(status=503),
                ScriptedResponse(status=429, headers={"Retry-After": "0.05"}),
                ScriptedResponse(drop_connection=True),
                ScriptedResponse(status=413, body='{"detail":"too large"}'),
                ScriptedResponse(),
                ScriptedResponse(),
            ]
        )
        for _ in range(60)
    ]
    count = 3000
    with CaptureServer(latency=0.02) as server:
        server.script(*faults)
        handler, log = handler_for(
            server.url,
            "mixed",
            flush_at=10,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            max_attempts=30,
            flush_interval=0.2,
        )
        for n in range(count):
            log.info("x", extra={"span": tool_span(n)})
        handler.close()
        stats = handler.stats()
        assert span_ids(server.events) == Counter(f"{n:016x}" for n in range(count))
    assert stats["sent"] == stats["mapped"] == count
    assert stats["dropped"] == {}


def test_flush_waits_for_retries_and_every_sender() -> None:
    with CaptureServer(latency=0.05) as server:
        server.script(
            ScriptedResponse(status=500),
            ScriptedResponse(),
            ScriptedResponse(status=429, headers={"Retry-After": "0.3"}),
            ScriptedResponse(drop_connection=True),
            ScriptedResponse(status=413),
        )
        handler, log = handler_for(
            server.url, "flush_retries", flush_at=5, flush_interval=60, retry_base_delay=0.05
        )
        for round_ in range(3):
            for n in range(round_ * 100, round_ * 100 + 100):
                log.info("x", extra={"span": tool_span(n)})
            handler.flush()  # everything logged so far is out, retries included
            expected = Counter(f"{n:016x}" for n in range(round_ * 100 + 100))
            assert not expected - span_ids(server.events), round_  # none missing
        handler.close()


@pytest.mark.slow  # waits out a Retry-After of 1 s
def test_retry_after_is_honoured(capture_server: CaptureServer) -> None:
    capture_server.script(ScriptedResponse(status=429, headers={"Retry-After": "1"}))
    handler, log = handler_for(capture_server.url, "retry_after", flush_at=1)
    log.info("x", extra={"span": tool_span(1)})
    started = time.monotonic()
    events = capture_server.wait_for_events(1, timeout=PATIENCE)
    assert len(events) == 1
    assert time.monotonic() - started >= 0.9  # a lower bound: no machine is too fast for it
    handler.close()


def test_client_errors_are_not_retried_and_are_reported_once(
    capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    capture_server.script(ScriptedResponse(status=400, body='{"detail": "invalid batch"}'))
    handler, log = handler_for(capture_server.url, "client_error", flush_at=5)
    for n in range(10):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    assert len(capture_server.requests) == 2
    assert handler.stats()["dropped"] == {"undeliverable": 5}
    warnings = [r.getMessage() for r in library_logs.records if r.levelno == logging.WARNING]
    assert any("HTTP 400" in w and "invalid batch" in w for w in warnings)


def test_413_splits_the_batch_and_loses_nothing(capture_server: CaptureServer) -> None:
    big = "x" * 3000
    capture_server.max_body_bytes = 9000  # about two events per request, gzip off
    handler, log = handler_for(capture_server.url, "too_large", flush_at=16, gzip=False)
    for n in range(16):
        log.info("x", extra={"span": tool_span(n, input=big)})
    handler.close()
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(16))
    assert any(r.status == 413 for r in capture_server.requests)
    assert handler.stats()["dropped"] == {}


def test_an_oversize_event_is_shrunk_to_fit(capture_server: CaptureServer) -> None:
    handler, log = handler_for(capture_server.url, "shrink", max_event_bytes=20_000)
    log.info("x", extra={"span": tool_span(1, input="y" * 100_000, output={"text": "ok"})})
    handler.close()
    (event,) = capture_server.events
    assert len(json.dumps(event, separators=(",", ":"))) <= 20_000
    assert "truncated" in event["properties"]["$ai_input_state"]
    assert event["properties"]["$ai_output_state"] == {"text": "ok"}
    assert handler.stats()["shrunk_events"] == 1


def test_an_event_over_half_the_buffer_is_shrunk_and_pushes_nothing_out(
    capture_server: CaptureServer,
) -> None:
    handler, log = handler_for(
        capture_server.url, "shrink_to_buffer", max_buffer_bytes=50_000, flush_at=1000
    )
    log.info("x", extra={"span": tool_span(1)})
    log.info("x", extra={"span": tool_span(2, input="y" * 200_000)})
    handler.close()
    assert span_ids(capture_server.events) == Counter([f"{1:016x}", f"{2:016x}"])
    (big,) = [e for e in capture_server.events if e["properties"]["$ai_span_id"] == f"{2:016x}"]
    assert len(json.dumps(big, separators=(",", ":"))) <= 50_000 // 2
    assert "truncated" in big["properties"]["$ai_input_state"]
    assert handler.stats()["shrunk_events"] == 1
    assert handler.stats()["dropped"] == {}


def test_an_event_within_half_the_buffer_is_sent_whole(capture_server: CaptureServer) -> None:
    handler, log = handler_for(capture_server.url, "whole", max_buffer_bytes=1_000_000)
    log.info("x", extra={"span": tool_span(1, input="y" * 400_000)})
    handler.close()
    (event,) = capture_server.events
    assert event["properties"]["$ai_input_state"] == "y" * 400_000
    assert handler.stats()["shrunk_events"] == 0


def test_the_buffer_never_drops_what_it_holds_for_an_event_that_could_never_fit() -> None:
    buffer = EventBuffer(max_events=100, max_bytes=1_000)
    small = [EncodedEvent(f'{{"n":{n}}}') for n in range(3)]
    for event in small:
        assert buffer.append(event) == []
    huge = EncodedEvent("z" * 1_001)
    assert buffer.append(huge) == [huge]
    assert buffer.take(10, 10_000) == small


def test_the_buffer_pushes_nothing_out_for_an_event_that_the_events_in_flight_keep_out() -> None:
    buffer = EventBuffer(max_events=100, max_bytes=1_000)
    assert buffer.append(EncodedEvent("f" * 700)) == []
    in_flight = buffer.take(1, 0)
    queued = [EncodedEvent(f'{{"n":{n}}}') for n in range(3)]
    for event in queued:
        assert buffer.append(event) == []
    large = EncodedEvent("z" * 400)  # under the bound, but 700 bytes are in flight
    assert buffer.append(large) == [large]
    assert buffer.take(10, 10_000) == queued  # still held, not pushed out for nothing
    buffer.release(in_flight)
    assert buffer.bytes == sum(len(event) for event in queued)


def test_the_buffer_refuses_a_new_event_while_the_events_in_flight_fill_the_count() -> None:
    buffer = EventBuffer(max_events=2, max_bytes=1_000)
    for n in range(2):
        assert buffer.append(EncodedEvent(f'{{"n":{n}}}')) == []
    assert len(buffer.take(2, 1_000)) == 2  # in flight: the count is full, the queue empty
    new = EncodedEvent('{"n":2}')
    assert buffer.append(new) == [new]
    assert (buffer.held_events, len(buffer)) == (2, 0)


@pytest.mark.slow
def test_dead_server_with_spill_dir_then_replay_delivers_each_once(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retrying until the retries run out would take hours: close() keeps its deadline.
    handler, log = handler_for(
        dead_url(),
        "spill",
        spill_dir=tmp_path,
        shutdown_timeout=1.5,
        flush_at=10,
        max_attempts=1000,
        retry_max_delay=600,
    )
    for n in range(120):
        log.info("x", extra={"span": tool_span(n)})
    returns_in_time(handler.close)
    assert handler.stats()["spilled"] == 120
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1 and not list(tmp_path.glob("*.part"))
    assert sum(1 for _ in files[0].open()) == 120

    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(120))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_replay_resumes_without_sending_twice(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, log = handler_for(dead_url(), "interrupt", spill_dir=tmp_path, shutdown_timeout=0.3)
    for n in range(250):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    # The first request goes through, then the server refuses for good.
    capture_server.script(ScriptedResponse(), ScriptedResponse(status=400))
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 1
    assert len(capture_server.events) == 100
    assert cli_main(["replay", "--host", capture_server.url, str(tmp_path)]) == 0
    assert span_ids(capture_server.events) == Counter(f"{n:016x}" for n in range(250))


def test_replay_maps_span_json_lines(
    tmp_path: Path, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"time": "2025-01-01T00:00:01.000Z", "span_event": "span_ended", "span": tool_span(n)}
        for n in range(3)
    ] + [
        {"time": "2025-01-01T00:00:02.000Z", "feedback": {"traceId": "t", "value": 1}},
        {"message": "not a span"},
    ]
    path = tmp_path / "app.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert cli_main(["replay", "--host", capture_server.url, str(path)]) == 0
    assert [e["event"] for e in capture_server.events] == ["$ai_span"] * 3 + ["$ai_feedback"]
    # The application's own file is left as it was (issue 21); a second replay sends nothing.
    assert path.read_text().endswith("\nnot json\n")
    assert cli_main(["replay", "--host", capture_server.url, str(path)]) == 0
    assert len(capture_server.events) == 4


@pytest.mark.slow
def test_a_429_storm_with_a_fast_producer_keeps_the_buffer_within_its_bound() -> None:
    with CaptureServer(latency=0.01) as server:
        server.answer_by_default(ScriptedResponse(status=429, headers={"Retry-After": "0.2"}))
        handler, log = handler_for(
            server.url, "storm_bound", max_buffer_events=500, shutdown_timeout=0.5
        )
        buffer = handler._pipeline.buffer
        peak = 0

        def mapped_all() -> bool:
            nonlocal peak
            peak = max(peak, buffer.held_events)
            mapped: int = handler.stats()["mapped"]
            return mapped == 20_000

        for n in range(20_000):
            log.info("x", extra={"span": tool_span(n)})
            if n % 100 == 0:
                peak = max(peak, buffer.held_events)
        # However long the listener takes to map the burst, every record is mapped
        # before close(): then each one is an event that was dropped (or sent).
        wait_until(mapped_all, "the listener to map the 20,000 records")
        handler.close()
        stats = handler.stats()
    assert peak <= 500, peak  # in flight and waiting for a retry included, never one more
    assert stats["dropped"]["buffer_full"] > 0
    assert stats["sent"] == 0  # every request was answered 429
    assert sum(stats["dropped"].values()) == stats["mapped"] == stats["received"] == 20_000


@pytest.mark.slow
def test_buffer_bound_holds_during_an_outage(tmp_path: Path) -> None:
    bound = 2_000_000
    handler, log = handler_for(dead_url(), "outage", max_buffer_bytes=bound, shutdown_timeout=0.5)
    payload = "z" * 1000
    for n in range(20_000):
        log.info("x", extra={"span": tool_span(n, input=payload)})
    wait_until(lambda: handler.stats()["mapped"] == 20_000, "the listener to map everything")
    buffer = handler._pipeline.buffer
    assert buffer.bytes <= bound
    stats = handler.stats()
    handler.close()
    assert stats["dropped"]["buffer_full"] > 0
    assert sum(handler.stats()["dropped"].values()) == 20_000


@pytest.mark.slow
def test_default_bounds_absorb_a_burst_of_20000_spans(capture_server: CaptureServer) -> None:
    handler, log = handler_for(capture_server.url, "burst")
    payload = "q" * 1000
    for n in range(20_000):
        log.info("x", extra={"span": tool_span(n, input=payload)})
    handler.close()
    assert handler.stats()["dropped"] == {}
    assert len(capture_server.events) == 20_000


def test_block_policy_waits_for_room_instead_of_dropping(capture_server: CaptureServer) -> None:
    handler, log = handler_for(
        capture_server.url, "block", max_queue_size=10, overflow="block", block_timeout=PATIENCE
    )
    for n in range(300):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    assert handler.stats()["dropped"] == {}
    assert len(capture_server.events) == 300


def test_a_record_waiting_for_room_when_close_begins_is_counted_not_lost(
    capture_server: CaptureServer,
) -> None:
    gate = threading.Event()

    def hold(event: dict[str, Any]) -> dict[str, Any]:
        gate.wait(PATIENCE)  # the listener is busy until the test lets it go
        return event

    handler, log = handler_for(
        capture_server.url,
        "block_close",
        overflow="block",
        max_queue_size=1,
        block_timeout=PATIENCE,
        before_send=hold,
    )

    def producer() -> None:
        # 0 is being mapped, 1 fills the queue, 2 waits for room.
        for n in range(3):
            log.info("x", extra={"span": tool_span(n)})

    thread = threading.Thread(target=producer)
    thread.start()
    wait_until(lambda: handler.stats()["received"] == 3, "record 2 to wait for room")
    closer = threading.Thread(target=handler.close)
    closer.start()
    # close() began: the waiting record is given up (counted), so the producer ends,
    # while the listener is still held; only then may it map 0 and 1.
    thread.join(PATIENCE)
    assert not thread.is_alive()
    gate.set()
    closer.join(PATIENCE)
    assert not closer.is_alive()
    stats = handler.stats()
    assert stats["received"] == 3, stats
    # Every record received is mapped (and sent) or counted as dropped.
    assert stats["mapped"] == stats["sent"] == 2, stats
    assert stats["dropped"] == {"closed": 1}, stats


def test_shutdown_summary_warns_about_losses(library_logs: RecordCollector) -> None:
    handler, log = handler_for(dead_url(), "summary", shutdown_timeout=0.3)
    log.info("x", extra={"span": tool_span(1)})
    handler.close()
    summary = [r.getMessage() for r in library_logs.records if "closed with" in r.getMessage()]
    assert len(summary) == 1 and "shutdown_deadline" in summary[0]


def test_shutdown_summary_counts_spilled_events(
    tmp_path: Path, library_logs: RecordCollector
) -> None:
    handler, log = handler_for(
        dead_url(), "spill_summary", spill_dir=tmp_path, shutdown_timeout=0.3
    )
    for n in range(3):
        log.info("x", extra={"span": tool_span(n)})
    handler.close()
    summary = [r.getMessage() for r in library_logs.records if "closed with" in r.getMessage()]
    assert summary == [
        f"posthog-logging: closed with dropped events {{}} and 3 events spilled to {tmp_path}"
    ]


OUTAGE_PROGRAM = """
import json, logging, sys, time
from posthog_logging import PosthogLogHandler

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

bound, count, rate, url = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
handler = PosthogLogHandler(api_key="phc_outage", host=url, max_buffer_bytes=bound,
                            shutdown_timeout=0.5)
log = logging.getLogger("outage")
log.addHandler(handler)
log.setLevel(logging.INFO)
payload = "m" * 1000
warm = {"id": "0" * 16, "traceId": "1" * 32, "parentSpanId": "2" * 16, "name": "w",
        "type": "tool_call", "startTime": 1.0, "endTime": 2.0}
log.info("warm-up", extra={"span": warm})
time.sleep(0.3)
baseline = peak = rss_kb()
started = time.monotonic()
for n in range(count):
    log.info("x", extra={"span": {**warm, "id": f"{n:016x}", "input": payload}})
    if n % 100 == 0:
        peak = max(peak, rss_kb())
        lag = n / rate - (time.monotonic() - started)
        if lag > 0:
            time.sleep(lag)
peak = max(peak, rss_kb())
buffered = handler._pipeline.buffer.bytes
handler.close()
print(json.dumps({"growth_kb": peak - baseline, "buffered": buffered,
                  "stats": handler.stats()}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("bound_mb", [4, 16])
def test_memory_follows_the_bound_during_an_outage(bound_mb: int) -> None:
    bound = bound_mb * 1024 * 1024
    # 30,000 spans of 1 KB at 10,000/s against a dead server: 40 MB of events.
    result = subprocess.run(
        [sys.executable, "-c", OUTAGE_PROGRAM, str(bound), "30000", "10000", dead_url()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stats = report["stats"]
    assert report["buffered"] <= bound
    # Nothing reached the dead server: every one of the 30,001 records (the warm-up
    # too) is counted as dropped, once; the bound dropped some (40 MB of events for
    # a few MB of room), the shutdown the rest.
    assert (stats["received"], stats["sent"]) == (30_001, 0)
    assert sum(stats["dropped"].values()) == 30_001, stats["dropped"]
    assert set(stats["dropped"]) <= {"buffer_full", "undeliverable", "shutdown_deadline"}
    assert stats["dropped"]["buffer_full"] > 0
    assert report["growth_kb"] * 1024 < bound + 24 * 1024 * 1024


def test_hanging_server_at_shutdown_still_spills_everything(
    tmp_path: Path, capture_server: CaptureServer
) -> None:
    capture_server.answer_by_default(ScriptedResponse(hang=True))  # never answered
    handler, log = handler_for(
        capture_server.url,
        "hang",
        spill_dir=tmp_path,
        flush_at=5,
        shutdown_timeout=0.5,
        request_timeout=600,  # only close()'s deadline ends the requests
    )
    for n in range(12):
        log.info("x", extra={"span": tool_span(n)})
    assert capture_server.wait_for_in_flight(2, timeout=PATIENCE) == 2  # two batches of 5
    returns_in_time(handler.close)  # whatever the requests in flight would wait
    spilled = [json.loads(line) for file in tmp_path.glob("*.jsonl") for line in file.open()]
    assert span_ids(spilled) == Counter(f"{n:016x}" for n in range(12))
    assert handler.stats()["spilled"] == 12
