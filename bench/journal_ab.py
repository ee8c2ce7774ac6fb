"""The write-ahead journal's CPU cost, journal off and on alternated in one run.

    python bench/journal_ab.py            # about two minutes on a shared 2-CPU machine

Two measurements, each as paired rounds (off, on, off, on, ...) so that the
machine's load, which drifts, weighs on both sides alike; each prints the median
of the per-pair ratios and their spread, and the load average around it.

1. The sender alone (no mapping, no socket: an exporter that accepts every batch)
   adding 1.2 KB events one call per event (``Sender.add``, what the listener does
   per record today) and in runs of 32 (``Sender.add_many``, one journal write per
   run): the journal's own cost, per 1,000 events delivered.
2. The whole handler (``bench/run.py``'s delivery child: spans logged as fast as
   possible, mapped, sent to a capture server answering after 50 ms): process CPU
   per 1,000 events delivered, without and with ``spill_dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from run import deliver, table

from posthog_logging.encoding import EncodedEvent
from posthog_logging.exporter import Outcome
from posthog_logging.journal import Journal
from posthog_logging.sender import EventBuffer, Sender
from posthog_logging.stats import Stats

#: The size of a mapped generation event with a short prompt, encoded.
EVENT_BYTES = 1200


class Accepting:
    """An exporter that accepts every batch at once: the sender's cost alone."""

    def export(self, events: list[EncodedEvent], timeout: float | None = None) -> Outcome:
        return Outcome(len(events), 0, None)

    def shutdown(self) -> None:
        pass


def sender_cpu_per_1000(count: int, journal: bool, *, run: int) -> float:
    """Process CPU per 1,000 events added (``run`` at a time) and delivered."""
    padding = "x" * (EVENT_BYTES - 60)
    events = [json.dumps({"event": "$ai_span", "n": n, "pad": padding}) for n in range(count)]
    with tempfile.TemporaryDirectory() as directory:
        sender = Sender(
            Accepting(),
            Stats(),
            EventBuffer(max_events=count, max_bytes=count * 2 * EVENT_BYTES),
            flush_at=100,
            journal=Journal(directory) if journal else None,
        )
        cpu = time.process_time()
        for start in range(0, count, run):
            if run == 1:
                sender.add(events[start])
            else:
                sender.add_many(events[start : start + run])
        sender.drain(time.monotonic() + 60)
        sender.abandon()
        return (time.process_time() - cpu) / count * 1000


def handler_cpu_per_1000(count: int, journal: bool) -> float:
    with tempfile.TemporaryDirectory() as directory:
        options: dict[str, Any] = {"spill_dir": directory} if journal else {}
        result = deliver("ours", count, latency=0.05, **options)
        return float(result["cpu"]) / int(result["events"]) * 1000


def paired(rounds: int, measure: Callable[[bool], float]) -> list[str]:
    """Alternate off and on ``rounds`` times: median off, median on, the median ratio
    of each pair and the spread of those ratios."""
    off, on = [], []
    for _ in range(rounds):
        off.append(measure(False))
        on.append(measure(True))
    ratios = sorted(b / a - 1 for a, b in zip(off, on, strict=True))
    return [
        f"{statistics.median(off) * 1000:.1f}",
        f"{statistics.median(on) * 1000:.1f}",
        f"{statistics.median(ratios):+.0%}",
        f"{ratios[0]:+.0%} to {ratios[-1]:+.0%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    measures: dict[str, Callable[[bool], float]] = {
        "sender, one add() per event": partial(sender_cpu_per_1000, args.events, run=1),
        "sender, add_many() of 32": partial(sender_cpu_per_1000, args.events, run=32),
        "handler, 50 ms server": partial(handler_cpu_per_1000, args.events),
    }
    rows = [[label, *paired(args.rounds, measure)] for label, measure in measures.items()]
    print(
        table(
            f"The journal's CPU cost: {args.rounds} alternated pairs of {args.events:,} events"
            f" (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)",
            [
                "path",
                "CPU ms / 1,000 events, off",
                "on",
                "median cost (per pair)",
                "spread",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
