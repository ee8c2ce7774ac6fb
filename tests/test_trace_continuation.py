"""Traces that cross threads and processes: ``trace_id=``, ``traceparent``, thread pools."""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.tracing import parse_traceparent

from .conftest import DUMMY_KEY, RecordCollector, span_logger

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def records() -> Iterator[tuple[logging.Logger, RecordCollector]]:
    collector = RecordCollector()
    yield span_logger("test.continuation.records", collector), collector


def spans(collector: RecordCollector) -> dict[str, dict[str, Any]]:
    return {record.span["name"]: record.span for record in collector.records}  # type: ignore[attr-defined]


def test_traceparent_is_the_current_span_as_a_w3c_header(
    records: tuple[logging.Logger, RecordCollector],
) -> None:
    logger, _ = records
    assert pl.traceparent() is None
    with pl.span("root", logger=logger) as root, pl.span("child", logger=logger) as child:
        header = pl.traceparent()
    assert header == f"00-{root.trace_id}-{child.span_id}-01"
    assert header is not None and re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", header)
    assert parse_traceparent(header) == (root.trace_id, child.span_id)


@pytest.mark.parametrize(
    "continue_with",
    [{"traceparent": HEADER}, {"trace_id": TRACE, "parent_span_id": PARENT}],
    ids=["traceparent", "ids"],
)
def test_a_span_continues_a_trace_begun_elsewhere(
    records: tuple[logging.Logger, RecordCollector], continue_with: dict[str, Any]
) -> None:
    logger, collector = records
    outer = pl.span("outer", logger=logger)  # a local span must not capture it
    with (
        outer,
        pl.span("task", type="workflow_run", logger=logger, tags=["x"], **continue_with),
        pl.generation("llm", logger=logger) as llm,
    ):
        pass
    got = spans(collector)
    task = got["task"]
    assert task["traceId"] == TRACE
    assert task["parentSpanId"] == PARENT
    assert task["isRootSpan"] is False
    assert "tags" not in task  # tags belong to the trace's root, which is elsewhere
    assert got["llm"]["traceId"] == TRACE
    assert got["llm"]["parentSpanId"] == task["id"]
    assert llm.trace_id == TRACE


def test_trace_id_alone_starts_a_root_with_that_id(
    records: tuple[logging.Logger, RecordCollector],
) -> None:
    logger, collector = records
    with pl.span("request", logger=logger, trace_id=TRACE.upper(), tags=["web"]):
        pass
    request = spans(collector)["request"]
    assert request["traceId"] == TRACE  # W3C ids are lowercase
    assert request["isRootSpan"] is True
    assert request["tags"] == ["web"]
    assert "parentSpanId" not in request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_id": "abc"}, "trace_id must be 32 hex digits"),
        ({"trace_id": "0" * 32}, "not all zero"),
        ({"trace_id": "g" * 32}, "trace_id must be 32 hex digits"),
        ({"trace_id": TRACE, "parent_span_id": "xyz"}, "parent_span_id must be 16 hex digits"),
        ({"trace_id": TRACE, "parent_span_id": "0" * 16}, "not all zero"),
        ({"parent_span_id": PARENT}, "parent_span_id= needs the trace_id="),
        ({"traceparent": HEADER, "trace_id": TRACE}, "not both"),
        ({"traceparent": "garbage"}, "traceparent must look like"),
        ({"traceparent": f"ff-{TRACE}-{PARENT}-01"}, "traceparent must look like"),
        ({"traceparent": f"00-{TRACE}-{PARENT}-01-extra"}, "traceparent must look like"),
        ({"traceparent": f"00-{'0' * 32}-{PARENT}-01"}, "not all zero"),
        ({"trace_id": TRACE, "parent": None}, "parent= and a trace to continue"),
    ],
)
def test_bad_ids_are_a_clear_value_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pl.span("s", **kwargs)


def test_ids_must_be_text() -> None:
    with pytest.raises(TypeError, match="trace_id must be a str"):
        pl.span("s", trace_id=123)  # type: ignore[arg-type]


def test_a_later_traceparent_version_with_more_fields_is_read() -> None:
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-future") == (TRACE, PARENT)


def test_continued_trace_reaches_posthog_under_its_remote_parent(
    capture_server: CaptureServer,
) -> None:
    """Two "services": the first sends its header, the second continues the trace."""
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = span_logger("test.continuation.e2e", handler)
    frontend = pl.span("frontend", logger=logger, metadata={"userId": "u1"})
    with frontend, pl.span("call backend", logger=logger) as call:
        header = pl.traceparent()
    assert header is not None
    with pl.span("backend", logger=logger, traceparent=header, metadata={"userId": "u1"}):
        pass
    handler.close()
    by_name = {e["properties"]["$ai_span_name"]: e for e in capture_server.events}
    backend = by_name["backend"]["properties"]
    assert backend["$ai_trace_id"] == frontend.trace_id
    assert backend["$ai_parent_id"] == call.span_id
    assert sorted(e["event"] for e in capture_server.events) == [
        "$ai_span",
        "$ai_span",
        "$ai_trace",
    ]


# ------------------------------------------------------------- thread pools


def _work(logger: logging.Logger, n: int) -> str:
    with pl.span(f"work {n}", logger=logger) as work:
        return work.trace_id


def test_context_thread_pool_executor_nests_worker_spans(
    records: tuple[logging.Logger, RecordCollector],
) -> None:
    logger, collector = records
    with (
        pl.ContextThreadPoolExecutor(max_workers=2) as pool,
        pl.span("fan out", logger=logger) as root,
    ):
        submitted = pool.submit(_work, logger, 0).result()
        mapped = list(pool.map(_work, [logger] * 3, [1, 2, 3]))
    assert {submitted, *mapped} == {root.trace_id}
    got = spans(collector)
    assert {got[f"work {n}"]["parentSpanId"] for n in range(4)} == {root.span_id}


def test_plain_executor_loses_the_span_and_carry_context_restores_it(
    records: tuple[logging.Logger, RecordCollector],
) -> None:
    logger, _ = records
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
        pl.span("root", logger=logger) as root,
    ):
        lost = pool.submit(_work, logger, 0).result()
        carried = pool.submit(pl.carry_context(_work), logger, 1).result()
    assert lost != root.trace_id
    assert carried == root.trace_id


def test_carry_context_for_a_thread(records: tuple[logging.Logger, RecordCollector]) -> None:
    logger, collector = records
    with pl.span("root", logger=logger) as root:
        thread = threading.Thread(target=pl.carry_context(_work), args=(logger, 7))
        thread.start()
        thread.join()
    assert spans(collector)["work 7"]["parentSpanId"] == root.span_id
