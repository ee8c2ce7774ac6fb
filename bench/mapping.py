"""Listener CPU per event, stage by stage: mapping, JSON encoding, gzip (issue 19).

    python bench/mapping.py                     # every span kind, best of 7 rounds
    python bench/mapping.py --profile generation   # where one kind's mapping time goes

The library's own functions are called directly, on one thread, as the
listener calls them: ``EventMapper.map_span`` for an ended span (no trace state,
as for a span whose start was not logged), ``EventEncoder.encode`` for each of
its events, and ``transport.encode_body`` with gzip for batches of 100 encoded
events (the sender's work, shown per event).  Each figure is the best of
several rounds over distinct spans built beforehand: the machine is shared, and
the best round is the one the other processes disturbed least.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

from run import generation_span, machine, table

from posthog_logging.contract import SpanEvent
from posthog_logging.mapping import Event, EventMapper, MappingOptions
from posthog_logging.pipeline import EventEncoder
from posthog_logging.stats import Stats
from posthog_logging.transport import encode_body

SPANS = 2_000
ROUNDS = 7
BATCH = 100
#: Issue 19's targets for mapping one span, in µs.
MAPPING_TARGET_US = {"generation": 15.0, "tool": 8.0}


def tool_span(n: int) -> dict[str, Any]:
    """An ended tool_call span: small arguments in, a small result out."""
    return {
        "id": f"{n:016x}",
        "traceId": f"{n // 10:032x}",
        "parentSpanId": f"{n // 10 + 1:016x}",
        "name": "tool: get_weather",
        "type": "tool_call",
        "startTime": 1735689600.0 + n,
        "endTime": 1735689600.4 + n,
        "attributes": {"toolDescription": "Current weather for a city", "toolType": "function"},
        "metadata": {"userId": f"user-{n % 50}", "sessionId": "s-1"},
        "input": {"city": "Paris", "units": "metric"},
        "output": {"temperature": 21.5, "conditions": "sunny", "humidity": 40},
        "isEvent": False,
        "isRootSpan": False,
    }


def agent_span(n: int) -> dict[str, Any]:
    """An ended agent_run root span (an ``$ai_trace`` event)."""
    return {
        "id": f"{n:016x}",
        "traceId": f"{n:032x}",
        "name": "agent run: 'weather-agent'",
        "type": "agent_run",
        "startTime": 1735689600.0 + n,
        "endTime": 1735689603.0 + n,
        "attributes": {"instructions": "You are a helpful weather assistant.", "maxSteps": 5},
        "metadata": {"userId": f"user-{n % 50}", "sessionId": "s-1", "tier": "pro"},
        "input": [{"role": "user", "content": "What's the weather in Paris?"}],
        "output": {"text": "It is sunny in Paris, 21.5 °C."},
        "tags": ["production"],
        "isEvent": False,
        "isRootSpan": True,
    }


KINDS: dict[str, Callable[[int], dict[str, Any]]] = {
    "generation": generation_span,
    "tool": tool_span,
    "agent root": agent_span,
}


def best_us_per_item(work: Callable[[], object], items: int, rounds: int) -> float:
    """µs per item of the fastest of ``rounds`` runs of ``work`` (which handles ``items``)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / items * 1e6


def measure(kind: str, count: int, rounds: int) -> list[str]:
    spans = [KINDS[kind](n) for n in range(count)]
    encoder = EventEncoder(MappingOptions(), Stats())
    mapper = encoder.mapper

    def map_all() -> None:
        # Each span's events are dropped once made, as the listener drops them once
        # encoded: kept in a list, 2,000 spans' events would make the garbage
        # collector walk them again and again, which the listener does not pay.
        for span in spans:
            mapper.map_span(span, SpanEvent.ENDED, 1735689700000)

    events: list[Event] = []
    for span in spans:
        events.extend(mapper.map_span(span, SpanEvent.ENDED, 1735689700000))
    encoded = [encoder.encode(event) for event in events]
    batches = [encoded[start : start + BATCH] for start in range(0, len(encoded), BATCH)]

    def compress_all() -> None:
        for batch in batches:
            encode_body("phc_bench", batch, gzip=True)

    mapping = best_us_per_item(map_all, count, rounds)
    encoding = best_us_per_item(lambda: [encoder.encode(event) for event in events], count, rounds)
    compression = best_us_per_item(compress_all, count, rounds)
    target = MAPPING_TARGET_US.get(kind)
    size = sum(len(text) for text in encoded) / count
    return [
        kind,
        f"{len(events) / count:g} ({', '.join(sorted({event['event'] for event in events}))})",
        f"{size:,.0f} B",
        f"{mapping:.1f} µs",
        f"{encoding:.1f} µs",
        f"{compression:.1f} µs",
        f"{mapping + encoding + compression:.1f} µs",
        "-" if target is None else f"<= {target:g} µs: {'met' if mapping <= target else 'not met'}",
    ]


def profile(kind: str, count: int) -> None:
    """cProfile of mapping ``count`` spans of one kind: the functions that take the time."""
    spans = [KINDS[kind](n) for n in range(count)]
    mapper = EventMapper(MappingOptions(), on_reject=lambda rejected: None)
    profiler = cProfile.Profile()
    profiler.enable()
    for span in spans:
        mapper.map_span(span, SpanEvent.ENDED, 1735689700000)
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    print(f"{kind}: {calls / count:.0f} Python calls per span")
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=SPANS, help="spans per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", choices=list(KINDS), help="profile one kind's mapping")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.spans)
        return
    rows = [measure(kind, args.spans, args.rounds) for kind in KINDS]
    header = [
        "span kind",
        "events per span",
        "JSON per span",
        "mapping",
        "encoding",
        "gzip + body",
        "sum",
        "mapping target",
    ]
    print(f"posthog-logging listener CPU per span — {machine()}")
    title = f"Listener CPU per span, by stage (best of {args.rounds} rounds of {args.spans:,})"
    print(table(title, header, rows))


if __name__ == "__main__":
    main()
