"""gzip's CPU per event and the body's size, by level, on varied text (transport.GZIP_LEVEL).

    python bench/compression.py

The generation spans of ``run.py`` repeat the same few sentences, which gzip
compresses thirty-fold at almost no cost; prompts and answers do not.  Here each
event carries a different passage of this repository's own documentation (English
prose, code and tables) as its input and output, 200 events to a body as a
sender makes it (``transport.encode_body``).  Best of 5 rounds of 10 bodies.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from run import machine, table

from posthog_logging.encoding import encode_event
from posthog_logging.transport import GZIP_LEVEL, encode_body, gzip_compress

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 200


def varied_events(count: int) -> list[str]:
    """Encoded generation events whose messages are passages of the docs."""
    words = " ".join(
        path.read_text(encoding="utf-8") for path in sorted(ROOT.glob("docs/*.md"))
    ).split()
    rng = random.Random(1)
    events = []
    for n in range(count):
        start = rng.randrange(len(words) - 600)
        prompt = " ".join(words[start : start + rng.randrange(50, 250)])
        answer = " ".join(words[start + 300 : start + 300 + rng.randrange(30, 200)])
        properties = {
            "$ai_trace_id": f"{rng.getrandbits(128):032x}",
            "$ai_span_id": f"{rng.getrandbits(64):016x}",
            "$ai_model": "gpt-4o",
            "$ai_provider": "openai",
            "$ai_input": [{"role": "user", "content": prompt}],
            "$ai_output_choices": [{"role": "assistant", "content": answer}],
            "$ai_input_tokens": rng.randrange(1000),
            "$ai_output_tokens": rng.randrange(500),
            "$ai_latency": rng.random(),
        }
        event = {
            "event": "$ai_generation",
            "distinct_id": f"user-{n}",
            "properties": properties,
            "uuid": f"{rng.getrandbits(128):032x}",
            "timestamp": "2025-01-01T00:00:00.000Z",
        }
        events.append(encode_event(event))
    return events


def main() -> None:
    events = varied_events(EVENTS)
    raw = encode_body("phc_bench", events, gzip=False)
    rows = []
    for level in (1, 3, 6, 9):
        best = min(_seconds(raw, level) for _ in range(5))
        size = len(gzip_compress(raw, level))
        chosen = " (GZIP_LEVEL)" if level == GZIP_LEVEL else ""
        rows.append(
            [
                f"{level}{chosen}",
                f"{best / EVENTS * 1e6:.1f} µs",
                f"{size:,} B",
                f"{len(raw) / size:.2f}x",
            ]
        )
    print(f"gzip by level — {machine()}\n")
    print(
        table(
            f"{EVENTS} generation events of varied text, {len(raw) / EVENTS:,.0f} B of JSON each",
            ["level", "CPU per event", "body", "smaller by"],
            rows,
        )
    )


def _seconds(raw: bytes, level: int, bodies: int = 10) -> float:
    started = time.process_time()
    for _ in range(bodies):
        gzip_compress(raw, level)
    return (time.process_time() - started) / bodies


if __name__ == "__main__":
    main()
