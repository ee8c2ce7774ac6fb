"""The capture server, its trace trees and the ``posthog-logging`` command, over real HTTP.

Requests go out through the ``posthog`` package's own client functions (``post``
and ``batch_post``, with the call shapes that every supported posthog version
accepts), so the server is checked against the transport it stands in for.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from posthog.request import APIError, batch_post, post

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.cli import main
from posthog_logging.devserver import (
    DROPPED,
    CaptureServer,
    ReceivedRequest,
    ScriptedResponse,
    TracePrinter,
    TraceStore,
    TraceViewer,
    dev_server,
    render_trace_tree,
)
from posthog_logging.transport import AI_BATCH_PATH

from .conftest import DUMMY_KEY, span_logger

TRACE = "7" * 32


def ai_event(kind: str, timestamp: str, **properties: Any) -> dict[str, Any]:
    return {
        "event": f"$ai_{kind}",
        "distinct_id": "user-1",
        "timestamp": timestamp,
        "properties": {"$ai_trace_id": TRACE, **properties},
    }


def agent_trace() -> list[dict[str, Any]]:
    """An agent run as the handler sends it: children end (and arrive) before their root."""
    return [
        ai_event(
            "span",
            "2025-01-01T00:00:02.600Z",
            **{
                "$ai_span_id": "tool-1",
                "$ai_span_name": "get_weather",
                "$ai_parent_id": "gen-1",
                "$ai_latency": 0.5,
            },
        ),
        ai_event(
            "span",
            "2025-01-01T00:00:04.000Z",
            **{
                "$ai_span_id": "fetch-1",
                "$ai_span_name": "fetch_docs",
                "$ai_parent_id": TRACE,
                "$ai_latency": 0.2,
                "$ai_is_error": True,
                "error_message": "HTTP 502 from docs service",
            },
        ),
        ai_event(
            "generation",
            "2025-01-01T00:00:03.500Z",
            **{
                "$ai_generation_id": "gen-1",
                "$ai_span_name": "plan",
                "$ai_model": "gpt-4o-mini",
                "$ai_parent_id": TRACE,
                "$ai_latency": 3.4,
                "$ai_input_tokens": 120,
                "$ai_output_tokens": 45,
            },
        ),
        ai_event(
            "trace",
            "2025-01-01T00:00:05.000Z",
            **{"$ai_span_name": "agent run", "$ai_latency": 5.0},
        ),
    ]


EXPECTED_TREE = f"""\
trace {TRACE}
└── trace  agent run  5.000s
    ├── generation  plan  [gpt-4o-mini]  3.400s  tokens 120/45
    │   └── span  get_weather  0.500s
    ├── span  fetch_docs  0.200s  ERROR HTTP 502 from docs service
    └── feedback  'great'"""


def feedback() -> dict[str, Any]:
    return ai_event("feedback", "2025-01-01T00:00:06.000Z", **{"$ai_feedback_text": "great"})


def send(
    server: CaptureServer, batch: list[dict[str, Any]], *, gzip: bool = True, timeout: float = 5
) -> requests.Response:
    """POST a batch to the AI endpoint with posthog's transport; the raw response."""
    return post(DUMMY_KEY, server.url, AI_BATCH_PATH, gzip, timeout, batch=batch)


def raw_post(server: CaptureServer, body: bytes) -> int:
    """POST bytes with no Content-Encoding header; the answer's status."""
    request = urllib.request.Request(f"{server.url}/batch/", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status


# ------------------------------------------------------------------ recording


def test_gzip_and_plain_batches_are_recorded_in_order(capture_server: CaptureServer) -> None:
    events = agent_trace()
    send(capture_server, events[:3], gzip=True)
    batch_post(DUMMY_KEY, host=capture_server.url, gzip=False, timeout=5, batch=events[3:])
    first, second = capture_server.requests
    assert (first.index, first.path, first.gzipped, first.api_key, first.status) == (
        0,
        AI_BATCH_PATH,
        True,
        DUMMY_KEY,
        200,
    )
    assert first.headers["Content-Encoding"] == "gzip"
    assert (second.index, second.path, second.gzipped, second.status) == (1, "/batch/", False, 200)
    assert second.body_bytes == int(second.headers["Content-Length"])
    assert capture_server.events == events


def test_bare_list_bodies_and_gzip_found_by_its_magic_bytes(
    capture_server: CaptureServer,
) -> None:
    events = agent_trace()
    assert raw_post(capture_server, json.dumps(events[:2]).encode()) == 200
    assert raw_post(capture_server, gzip.compress(json.dumps(events[2:]).encode())) == 200
    plain, zipped = capture_server.requests
    assert (plain.gzipped, plain.api_key, plain.batch) == (False, None, events[:2])
    assert (zipped.gzipped, zipped.batch) == (True, events[2:])
    assert zipped.body_bytes < len(json.dumps(events[2:]))
    assert capture_server.events == events


@pytest.mark.parametrize("body", [b"{not json", b"\x1f\x8b broken gzip", b'"a string"'])
def test_an_unreadable_body_gets_400_and_is_recorded_empty(
    capture_server: CaptureServer, body: bytes
) -> None:
    assert raw_post(capture_server, body) == 400
    (request,) = capture_server.requests
    assert (request.status, request.batch, request.body_bytes) == (400, [], len(body))
    assert capture_server.events == []


def test_oversize_body_gets_413_and_is_not_delivered() -> None:
    with CaptureServer(max_body_bytes=2_000) as server:
        big = [ai_event("span", "2025-01-01T00:00:00.000Z", blob="x" * 3_000)]
        with pytest.raises(APIError) as raised:
            batch_post(DUMMY_KEY, host=server.url, gzip=False, timeout=5, batch=big)
        assert raised.value.status == 413
        send(server, agent_trace()[:1], gzip=False)
        assert [(r.status, r.body_bytes > 2_000) for r in server.requests] == [
            (413, True),
            (200, False),
        ]
        assert server.events == agent_trace()[:1]


def test_get_is_a_health_check(capture_server: CaptureServer) -> None:
    with urllib.request.urlopen(f"{capture_server.url}/", timeout=5) as response:
        assert response.status == 200
        assert b"dev server" in response.read()
    assert capture_server.requests == []


def test_on_request_sees_every_request_and_clear_forgets_them() -> None:
    seen: list[ReceivedRequest] = []
    with CaptureServer(on_request=seen.append) as server:
        server.script(ScriptedResponse(status=500), ScriptedResponse(status=500))
        send(server, agent_trace()[:1])
        send(server, agent_trace()[1:2])
        # on_request runs once the answer is out, so the client may be first: wait for it.
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [(r.index, r.status) for r in seen] == [(0, 500), (1, 500)]
        server.clear()  # also drops the second scripted 500
        send(server, agent_trace()[:1])
        assert [(r.index, r.status) for r in server.requests] == [(0, 200)]
        assert server.events == agent_trace()[:1]


def test_stop_is_idempotent_and_ends_kept_alive_connections() -> None:
    server = CaptureServer().start()
    session = requests.Session()
    assert session.post(f"{server.url}/batch/", json=[], timeout=5).status_code == 200
    server.stop()
    server.stop()
    # The session's pooled connection must not reach a handler of the stopped server.
    with pytest.raises(requests.ConnectionError):
        session.post(f"{server.url}/batch/", json=[], timeout=5)
    session.close()


# ----------------------------------------------------------- fault injection


def test_scripted_503_then_the_default_200(capture_server: CaptureServer) -> None:
    capture_server.script(ScriptedResponse(status=503, body='{"detail": "down"}'))
    events = agent_trace()
    first = send(capture_server, events[:2])
    assert (first.status_code, first.json()) == (503, {"detail": "down"})
    second = send(capture_server, events[2:])
    assert (second.status_code, second.json()) == (200, {"status": 1})
    assert [r.status for r in capture_server.requests] == [503, 200]
    assert capture_server.events == events[2:]  # a refused batch is not delivered


def test_retry_after_header_reaches_the_client(capture_server: CaptureServer) -> None:
    capture_server.script(ScriptedResponse(status=429, headers={"Retry-After": "1"}))
    response = send(capture_server, agent_trace())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


def test_delay_holds_the_answer(capture_server: CaptureServer) -> None:
    capture_server.script(ScriptedResponse(delay=0.3))
    started = time.monotonic()
    assert send(capture_server, agent_trace()).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_client_giving_up_on_a_delayed_answer_leaves_stderr_clean(
    capfd: pytest.CaptureFixture[str],
) -> None:
    answered = threading.Event()
    with CaptureServer(on_request=lambda _: answered.set()) as server:
        server.script(ScriptedResponse(delay=0.4))
        with pytest.raises(requests.Timeout):
            send(server, agent_trace(), timeout=0.1)
        assert answered.wait(5)
        time.sleep(0.1)  # the broken pipe of the late answer is handled by now
    assert capfd.readouterr().err == ""


def test_drop_connection_closes_without_an_answer(capture_server: CaptureServer) -> None:
    capture_server.script(ScriptedResponse(drop_connection=True))
    with pytest.raises(requests.ConnectionError):
        send(capture_server, agent_trace())
    assert send(capture_server, agent_trace()).status_code == 200
    assert [r.status for r in capture_server.requests] == [DROPPED, 200]
    assert capture_server.events == agent_trace()


def test_a_429_storm_answers_each_request_then_accepts_again(
    capture_server: CaptureServer,
) -> None:
    storm = ScriptedResponse(429, '{"detail": "slow down"}', {"Retry-After": "2"})
    capture_server.script(*[storm] * 5)
    answers = [send(capture_server, agent_trace()[:1]) for _ in range(6)]
    assert [(a.status_code, a.headers.get("Retry-After")) for a in answers] == [
        *[(429, "2")] * 5,
        (200, None),
    ]
    assert capture_server.events == agent_trace()[:1]


def test_a_server_hanging_on_every_request_holds_them_until_it_stops() -> None:
    server = CaptureServer().start()
    server.answer_by_default(ScriptedResponse(hang=True))
    for _ in range(2):
        with pytest.raises(requests.Timeout):
            send(server, agent_trace(), timeout=0.2)
    assert server.wait_for_in_flight(2) == 2  # neither was ever answered
    assert [(r.status, len(r.batch)) for r in server.requests] == [(DROPPED, 4)] * 2
    assert server.events == []
    server.answer_by_default(None)
    assert send(server, agent_trace()).status_code == 200
    server.stop()  # ends the two hung requests (without it they would hang for ever)
    assert server.wait_for_in_flight(0, timeout=30) == 0


# ------------------------------------------------------------------- latency


def test_latency_holds_each_answer_from_the_arrival_of_its_body() -> None:
    with CaptureServer(latency=0.3) as server:
        server.script(ScriptedResponse(delay=0.2))
        before = time.time()
        assert send(server, agent_trace()).status_code == 200
        first = time.time() - before
        assert send(server, agent_trace()).status_code == 200
        second = time.time() - before - first
    assert first >= 0.5  # latency plus the scripted delay
    assert second >= 0.3
    request = server.requests[0]
    assert before <= request.received_at <= before + first - 0.5
    # The server counts a request out after its answer is sent: wait for that.
    assert server.wait_for_in_flight(0, timeout=5) == 0
    assert (request.in_flight, server.max_in_flight) == (1, 1)


def test_a_held_answer_does_not_hold_up_another_request_under_latency() -> None:
    # The first POST's answer is held for an hour (only stop() ends the wait); the
    # second is answered after the latency meanwhile: each request waits on its own
    # thread, as requests in flight on a connection pool overlap.
    with CaptureServer(latency=0.05) as server:
        server.script(ScriptedResponse(delay=3600))
        held: list[BaseException] = []

        def post_held() -> None:
            try:
                requests.post(f"{server.url}/batch/", json=[], timeout=60)
            except requests.RequestException as error:  # ended by stop(), either way
                held.append(error)

        first = threading.Thread(target=post_held)
        first.start()
        assert server.wait_for_in_flight(1) == 1
        with requests.Session() as session:
            assert session.post(f"{server.url}/batch/", json=[], timeout=30).status_code == 200
        # The second is counted out once its answer is sent; the first is still held.
        assert server.wait_for_in_flight(1) == 1
        assert [r.in_flight for r in server.requests] == [2]  # the second, beside the first
        assert server.max_in_flight == 2
        server.clear()
        assert server.max_in_flight == 1  # the peak restarts from the one still in flight
    first.join(timeout=30)
    assert not first.is_alive()


@pytest.mark.parametrize("latency", [-0.1, float("nan"), float("inf")])
def test_latency_must_be_finite_and_not_negative(latency: float) -> None:
    with pytest.raises(ValueError, match="latency must be finite and >= 0"):
        CaptureServer(latency=latency)


@pytest.mark.parametrize("latency", ["0.05", True, None])
def test_latency_must_be_a_number(latency: Any) -> None:
    with pytest.raises(TypeError, match="latency must be a number of seconds"):
        CaptureServer(latency=latency)


def test_wait_for_events_wakes_on_arrival_and_returns_partial_on_timeout(
    capture_server: CaptureServer,
) -> None:
    events = agent_trace()
    timer = threading.Timer(0.1, send, (capture_server, events[:2]))
    timer.start()
    assert capture_server.wait_for_events(2, timeout=5) == events[:2]
    timer.join()
    started = time.monotonic()
    assert capture_server.wait_for_events(10, timeout=0.2) == events[:2]
    assert time.monotonic() - started >= 0.2


# --------------------------------------------------------------- trace trees


def test_render_trace_tree_nests_by_parent_in_order_of_start() -> None:
    assert render_trace_tree([*agent_trace(), feedback()]) == EXPECTED_TREE


def test_render_trace_tree_without_root_puts_orphans_at_top_level() -> None:
    events = [e for e in agent_trace() if e["event"] != "$ai_trace"]
    events.append(ai_event("span", "2025-01-01T00:00:01.000Z", **{"$ai_parent_id": "gone"}))
    events.append(
        ai_event(
            "span",
            "2025-01-01T00:00:01.500Z",
            **{"$ai_span_id": "r", "$ai_is_error": True, "$ai_error": {"message": "boom"}},
        )
    )
    assert render_trace_tree(events).splitlines()[1:] == [
        "├── generation  plan  [gpt-4o-mini]  3.400s  tokens 120/45",
        "│   └── span  get_weather  0.500s",
        "├── span",
        "├── span  ERROR boom",
        "└── span  fetch_docs  0.200s  ERROR HTTP 502 from docs service",
    ]


def test_render_trace_tree_shows_every_event_once_whatever_the_ids() -> None:
    looped = [
        ai_event("span", "2025-01-01T00:00:01.000Z", **{"$ai_span_id": "a", "$ai_parent_id": "b"}),
        ai_event("span", "2025-01-01T00:00:02.000Z", **{"$ai_span_id": "b", "$ai_parent_id": "a"}),
    ]
    assert render_trace_tree([feedback()]).splitlines()[1:] == ["└── feedback  'great'"]
    assert render_trace_tree(looped).count("span") == 2
    assert render_trace_tree([]) == ""


def test_trace_printer_prints_on_root_again_on_growth_and_rootless_when_idle() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle_seconds=0.2)

    def receive(batch: list[dict[str, Any]]) -> None:
        printer.on_request(ReceivedRequest(0, AI_BATCH_PATH, {}, False, 0, None, batch, 200))

    children, root = agent_trace()[:3], agent_trace()[3:]
    receive(children)
    assert out.getvalue() == ""  # no root yet, not idle yet
    receive(root)
    assert out.getvalue().count(f"trace {TRACE}") == 1
    receive([feedback()])
    assert out.getvalue().endswith(EXPECTED_TREE + "\n\n")

    out.seek(0)
    out.truncate()
    receive([ai_event("span", "2025-01-01T00:00:01.000Z", **{"$ai_trace_id": "solo"})])
    printer.print_ready()
    assert out.getvalue() == ""
    time.sleep(0.25)
    printer.print_ready()
    printer.print_ready()
    assert out.getvalue().count("trace solo") == 1


def with_uuids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**event, "uuid": f"00000000-0000-4000-8000-{n:012d}"} for n, event in enumerate(events)
    ]


def test_a_re_sent_batch_is_shown_once_as_posthog_counts_it_once() -> None:
    out = io.StringIO()
    printer = TracePrinter(out)
    batch = with_uuids([*agent_trace(), feedback()])
    for _ in range(2):  # the client never saw the first answer, and sent the batch again
        printer.on_request(ReceivedRequest(0, AI_BATCH_PATH, {}, False, 0, None, batch, 200))
    assert out.getvalue() == EXPECTED_TREE + "\n\n"
    assert printer.store.events(TRACE) == batch


def test_trace_store_keeps_each_uuid_once_and_every_event_without_one() -> None:
    store = TraceStore()
    first, second = with_uuids(agent_trace()[:2])
    no_uuid = agent_trace()[2]
    assert store.add([first, no_uuid]) == [first, no_uuid]
    version = store.version
    assert store.add([{**first, "timestamp": "changed"}]) == []  # PostHog keeps the first
    assert store.version == version  # nothing changed
    assert store.add([second, no_uuid]) == [second, no_uuid]
    assert store.events(TRACE) == [first, no_uuid, second, no_uuid]
    assert store.events("other") is None


def test_trace_store_drops_the_traces_least_recently_added_to() -> None:
    store = TraceStore(max_traces=2, max_events=5)

    def event(trace: str, n: int) -> dict[str, Any]:
        return {"event": "$ai_span", "uuid": f"{trace}-{n}", "properties": {"$ai_trace_id": trace}}

    store.add([event("a", 1), event("b", 1)])
    store.add([event("a", 2)])  # a is now the most recently added to
    store.add([event("c", 1)])
    assert [trace for trace, _ in store.traces()] == ["a", "c"]
    store.add([event("c", n) for n in range(2, 6)])  # 7 events held: over max_events
    assert [trace for trace, _ in store.traces()] == ["c"]
    assert store.dropped_traces == 2
    assert store.add([event("b", 1)]) == [event("b", 1)]  # a dropped trace's uuids are forgotten


def test_trace_store_file_brings_the_events_back_after_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "events.jsonl"
    reports: list[str] = []
    events = with_uuids(agent_trace())
    store = TraceStore(path=path)
    store.add(events[:3])
    store.add(events[2:])  # one of them again: written once
    assert len(path.read_text().splitlines()) == 4
    with path.open("a") as file:
        file.write("not json\n[1, 2]\n\n")
    restarted = TraceStore(path=path, report=reports.append)
    assert restarted.events(TRACE) == events
    assert restarted.add(events[:1]) == []  # still known after the restart
    assert reports == [f"{path}: skipped 2 lines that are not JSON events"]


def test_trace_store_with_a_path_it_cannot_write_fails_at_once(tmp_path: Any) -> None:
    with pytest.raises(OSError):
        TraceStore(path=tmp_path / "missing-directory" / "events.jsonl")


def get(server: CaptureServer, target: str) -> tuple[int, str, bytes]:
    """GET ``target``: the status, content type and body."""
    try:
        with urllib.request.urlopen(server.url + target, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_viewer_routes_serve_the_page_its_files_and_the_trace_api() -> None:
    metric = ai_event(
        "metric",
        "2025-01-01T00:00:07.000Z",
        **{"$ai_metric_name": "helpfulness", "$ai_metric_value": 0.8, "$ai_parent_id": "gen-1"},
    )
    server, _ = dev_server(io.StringIO())
    with server:
        send(server, [*with_uuids(agent_trace()), feedback(), metric])
        assert server.wait_for_events(6)
        for target in ("/", f"/traces/{TRACE}?span=gen-1"):
            status, kind, body = get(server, target)
            assert (status, kind) == (200, "text/html; charset=utf-8")
            assert b'<script src="/static/viewer.js">' in body
        assert get(server, "/static/viewer.css")[:2] == (200, "text/css; charset=utf-8")
        assert get(server, "/static/../viewer.py")[0] == 404
        assert get(server, "/static/index.html")[0] == 404
        assert get(server, "/api/traces/unknown")[0] == 404
        detail = json.loads(get(server, f"/api/traces/{TRACE}")[2])
    rows = [(row["kind"], row["name"], row["depth"], row["key"]) for row in detail["rows"]]
    assert rows == [
        ("$ai_trace", "agent run", 0, TRACE),
        ("$ai_generation", "plan", 1, "gen-1"),
        ("$ai_span", "get_weather", 2, "tool-1"),
        ("$ai_metric", "metric: helpfulness = 0.8", 2, "row-3"),
        ("$ai_span", "fetch_docs", 1, "fetch-1"),
        ("$ai_feedback", "feedback: great", 1, "row-5"),
    ]
    summary = detail["summary"]
    assert (summary["input_tokens"], summary["output_tokens"], summary["error"]) == (120, 45, True)
    assert (summary["duration_s"], summary["models"], summary["user"]) == (
        5.0,
        ["gpt-4o-mini"],
        "user-1",
    )


def test_an_exception_event_hangs_under_the_span_it_ended_marked_as_an_error() -> None:
    # capture_exceptions=True: the $exception names the failed span in $ai_span_id. It is
    # not that span: the span keeps its own address, and the exception shows under it.
    out = io.StringIO()
    server, _ = dev_server(out)
    with server:
        handler = PosthogLogHandler(api_key=DUMMY_KEY, host=server.url, capture_exceptions=True)
        logger = span_logger("test.devserver.exception", handler)
        try:
            with pl.span("agent", logger=logger) as agent, pl.span("tool", logger=logger) as tool:
                raise ValueError("no such city")
        except ValueError:
            pass
        handler.close()
        detail = json.loads(get(server, f"/api/traces/{agent.trace_id}")[2])
    rows = [(r["kind"], r["name"], r["depth"], r["key"], r["error"]) for r in detail["rows"]]
    assert rows[1:] == [
        ("$ai_span", "tool", 1, tool.span_id, True),
        ("$exception", "exception: ValueError", 2, rows[2][3], True),
    ]
    assert detail["rows"][2]["error_message"] == "ValueError: no such city"
    assert "└── exception  ERROR ValueError: no such city" in out.getvalue()


def test_trace_api_answers_json_a_browser_parses_whatever_an_event_held() -> None:
    store = TraceStore()
    odd = {"$ai_latency": float("nan"), "$ai_input_tokens": float("inf"), "blob": b"x"}
    store.add([ai_event("generation", "2025-01-01T00:00:01.000Z", **odd)])
    page = TraceViewer(store).get(f"/api/traces/{TRACE}")
    detail = json.loads(page.body, parse_constant=pytest.fail)  # no NaN or Infinity
    props = detail["rows"][0]["event"]["properties"]
    assert (props["$ai_latency"], props["$ai_input_tokens"], props["blob"]) == (None, None, "b'x'")


def test_trace_list_is_newest_first_a_page_at_a_time_and_filtered() -> None:
    store = TraceStore()
    for n in range(7):
        stamp = f"2025-01-01T00:00:0{n}.000Z"
        store.add(
            [
                {
                    "event": "$ai_trace",
                    "timestamp": stamp,
                    "properties": {
                        "$ai_trace_id": f"t{n}",
                        "$ai_span_name": f"run {n}",
                        "$ai_model": "m" if n % 2 else "x",
                    },
                }
            ]
        )
    viewer = TraceViewer(store)
    page = viewer.trace_list({"offset": ["2"], "limit": ["3"]})
    assert (page["total"], [t["name"] for t in page["traces"]]) == (7, ["run 4", "run 3", "run 2"])
    filtered = viewer.trace_list({"q": ["RUN 1"]})
    assert [t["trace_id"] for t in filtered["traces"]] == ["t1"]
    assert viewer.trace_list({"limit": ["nonsense"]})["limit"] == 50


# ----------------------------------------------------------------------- CLI


def test_help_lists_the_commands_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert "prints each trace as a tree" in listed["dev-server"]
    assert main([]) == 2  # a command is required


def test_dev_server_on_a_busy_port_fails_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["dev-server", "--port", str(busy.getsockname()[1])]) == 2
    assert "posthog-logging:" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_dev_server_rejects_a_bad_latency(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main(["dev-server", "--port", "0", "--latency", value]) == 2
    assert "argument --latency:" in capsys.readouterr().err


DevServerProcess = tuple[subprocess.Popen[str], int, queue.Queue[str]]


@contextlib.contextmanager
def running_dev_server(*extra: str) -> Iterator[DevServerProcess]:
    """The ``posthog-logging dev-server`` command on a free port, and its stdout lines."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    # Ctrl-C as in a terminal: a runner started as a background job ignores SIGINT,
    # and a child would inherit that, so the command restores Python's own handler.
    command = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from posthog_logging.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", command, "dev-server", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield process, port, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
        stdout.close()


@pytest.fixture
def dev_server_process(request: pytest.FixtureRequest) -> Iterator[DevServerProcess]:
    """:func:`running_dev_server`; parametrize indirectly with a tuple of extra arguments."""
    with running_dev_server(*getattr(request, "param", ())) as running:
        yield running


def read_until(lines: queue.Queue[str], text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    output = ""
    while text not in output:
        output += lines.get(timeout=max(deadline - time.monotonic(), 0.01))
    return output


@pytest.mark.slow  # the dev server in a subprocess
def test_dev_server_command_prints_each_trace_tree_and_stops_on_ctrl_c(
    dev_server_process: DevServerProcess,
) -> None:
    process, port, lines = dev_server_process
    url = f"http://127.0.0.1:{port}"
    assert read_until(lines, "\n") == (
        f"posthog-logging dev server listening on {url}  (set POSTHOG_HOST to this)\n"
    )
    events = [*agent_trace(), feedback()]
    post(DUMMY_KEY, url, AI_BATCH_PATH, True, 5, batch=events[:3])
    post(DUMMY_KEY, url, AI_BATCH_PATH, True, 5, batch=events[3:])  # the root completes it
    assert EXPECTED_TREE in read_until(lines, "feedback")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0


@pytest.mark.slow  # the dev server in a subprocess
@pytest.mark.parametrize("dev_server_process", [("--latency", "0.25")], indirect=True)
def test_dev_server_command_answers_after_its_latency(
    dev_server_process: DevServerProcess,
) -> None:
    process, port, lines = dev_server_process
    url = f"http://127.0.0.1:{port}"
    assert f"listening on {url}, answering after 250 ms" in read_until(lines, "\n")
    started = time.monotonic()
    post(DUMMY_KEY, url, AI_BATCH_PATH, True, 5, batch=[*agent_trace(), feedback()])
    assert time.monotonic() - started >= 0.25
    assert EXPECTED_TREE in read_until(lines, "feedback")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0


@pytest.mark.slow  # the dev server in a subprocess
def test_dev_server_command_keeps_its_events_in_a_store_across_a_restart(tmp_path: Any) -> None:
    store = tmp_path / "events.jsonl"
    batch = with_uuids([*agent_trace(), feedback()])
    with running_dev_server("--store", str(store)) as (process, port, lines):
        url = f"http://127.0.0.1:{port}"
        assert f"open {url}/ in a browser" in read_until(lines, "read back")
        post(DUMMY_KEY, url, AI_BATCH_PATH, True, 5, batch=batch)
        assert EXPECTED_TREE in read_until(lines, "feedback")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    with running_dev_server("--store", str(store)) as (process, port, lines):
        assert f"1 traces read back from {store}" in read_until(lines, "read back")
        url = f"http://127.0.0.1:{port}"
        post(DUMMY_KEY, url, AI_BATCH_PATH, True, 5, batch=batch)  # known: shown once
        with urllib.request.urlopen(f"{url}/api/traces/{TRACE}", timeout=5) as response:
            detail = json.load(response)
        assert [row["event"] for row in detail["rows"]] == [
            batch[3],
            batch[2],
            batch[0],
            batch[1],
            batch[4],
        ]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    assert len(store.read_text().splitlines()) == len(batch)


@pytest.mark.slow  # the dev server in a subprocess
@pytest.mark.parametrize("dev_server_process", [("--no-web",)], indirect=True)
def test_dev_server_command_without_web_answers_get_with_a_health_check(
    dev_server_process: DevServerProcess,
) -> None:
    process, port, lines = dev_server_process
    assert "listening on" in read_until(lines, "\n")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read().startswith(b"posthog-logging dev server: POST batches")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0
