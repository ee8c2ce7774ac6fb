"""Trace-consistent sampling (posthog-python#965, posthog-js#4997): the rule, unit by unit."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from posthog_logging.sampling import (
    SAMPLE_RATE_PROPERTY,
    TraceSampler,
    check_sample_rate,
    fnv1a_32,
    sampler_for,
    utf8,
)

from .helpers import trace_sample_position


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x811C9DC5),  # the offset basis
        (b"a", 0xE40C292C),  # FNV reference vectors
        (b"foobar", 0xBF9CF968),
    ],
)
def test_fnv1a_32_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_a_lone_surrogate_is_hashed_as_u_fffd_as_javascript_writes_it() -> None:
    assert utf8("a\udcffb") == "a\ufffdb".encode()


def ai_event(trace_id: Any, name: str = "$ai_span") -> dict[str, Any]:
    properties: dict[str, Any] = {"$ai_span_id": "s"}
    if trace_id is not None:
        properties["$ai_trace_id"] = trace_id
    return {"event": name, "distinct_id": "d", "properties": properties}


def test_keeps_exactly_the_traces_below_the_rate_and_marks_them() -> None:
    sampler = TraceSampler(0.3)
    traces = [uuid.uuid4().hex for _ in range(2000)]
    for trace in traces:
        event = ai_event(trace)
        below = trace_sample_position(trace) < 0.3
        assert sampler.keep(event) is below
        assert (SAMPLE_RATE_PROPERTY in event["properties"]) is below
        if below:
            assert event["properties"][SAMPLE_RATE_PROPERTY] == 0.3
    kept = sum(trace_sample_position(trace) < 0.3 for trace in traces)
    assert 0.25 < kept / len(traces) < 0.35  # FNV-1a spreads hex trace ids evenly


def test_every_event_of_a_trace_makes_the_same_decision() -> None:
    sampler = TraceSampler(0.5)
    for trace in (uuid.uuid4().hex for _ in range(200)):
        names = ["$ai_trace", "$ai_span", "$ai_generation", "$ai_embedding", "$ai_feedback"]
        decisions = {sampler.keep(ai_event(trace, name)) for name in names}
        assert len(decisions) == 1


def test_the_boundary_is_strict() -> None:
    trace = "boundary"
    position = trace_sample_position(trace)
    assert not TraceSampler(position).keep(ai_event(trace))  # hash / 2**32 == rate: out
    assert TraceSampler(math.nextafter(position, 1)).keep(ai_event(trace))


@pytest.mark.parametrize(
    "event",
    [
        ai_event(None),  # no trace id
        ai_event(""),
        {"event": "$pageview", "distinct_id": "d", "properties": {"$ai_trace_id": "x"}},
        {"event": "custom", "distinct_id": "d", "properties": {"$ai_trace_id": "x"}},
        {"event": "$ai_span", "distinct_id": "d", "properties": None},
    ],
    ids=["no-trace-id", "empty-trace-id", "not-ai-pageview", "not-ai-custom", "no-properties"],
)
def test_events_the_rule_does_not_apply_to_are_kept_unmarked(event: dict[str, Any]) -> None:
    # A rate no trace id hashes below: any $ai_* event with a trace id would go.
    assert TraceSampler(1e-12).keep(event)
    assert SAMPLE_RATE_PROPERTY not in (event["properties"] or {})


def test_a_numeric_trace_id_is_hashed_as_its_text() -> None:
    position = trace_sample_position("42")
    assert TraceSampler(math.nextafter(position, 1)).keep(ai_event(42))
    assert not TraceSampler(position).keep(ai_event(42))


def test_rate_one_or_unset_means_no_sampler() -> None:
    assert sampler_for(None) is None
    assert sampler_for(1) is None
    assert sampler_for(1.0) is None
    sampler = sampler_for(0.25)
    assert sampler is not None and sampler.rate == 0.25


@pytest.mark.parametrize("rate", [0, 0.0, -0.1, 1.0000001, 2, math.nan, math.inf])
def test_rates_outside_zero_one_are_a_configuration_error(rate: float) -> None:
    with pytest.raises(ValueError, match=r"sample_rate must be in \(0, 1\]"):
        check_sample_rate(rate)
    with pytest.raises(ValueError, match="sample_rate"):
        TraceSampler(rate)


@pytest.mark.parametrize("rate", ["0.5", True, None, [0.5]])
def test_rates_that_are_not_numbers_are_a_type_error(rate: Any) -> None:
    with pytest.raises(TypeError, match="sample_rate must be a number"):
        check_sample_rate(rate)


#: The published rule written in JavaScript, as posthog-node would run it.
JS_RULE = r"""
const fnv1a32 = (text) => {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
};
const { ids, rate } = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(ids.map((id) => fnv1a32(id) / 2 ** 32 < rate)));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs the node interpreter")
def test_python_and_node_make_the_same_decision_for_every_trace() -> None:
    ids = [uuid.uuid4().hex for _ in range(500)] + [str(uuid.uuid4()) for _ in range(200)]
    ids += ["ü", "trace-🙂-" + "x" * 40, "\u00e9t\u00e9", "a\udcffb", "42", "日本語のトレース"]
    rate = 0.3
    node = subprocess.run(
        ["node", "-e", JS_RULE],
        input=json.dumps({"ids": ids, "rate": rate}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        errors="surrogatepass",
    )
    sampler = TraceSampler(rate)
    assert json.loads(node.stdout) == [sampler.keep(ai_event(trace)) for trace in ids]
