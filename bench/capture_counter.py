"""A capture server in its own process, so its CPU does not share the benchmark's GIL.

    python bench/capture_counter.py [--port N] [--latency SECONDS]

Prints ``ready <url>`` once listening; on SIGTERM prints what it accepted as
JSON and exits: events and requests, the most requests it had in flight at
once, when it answered the last accepted request, and how long after its
``timestamp`` each event was answered (the benchmarks stamp an event with the
time it was logged, so that is the delay from log to delivery).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

from posthog_logging.devserver import CaptureServer, ReceivedRequest
from posthog_logging.values import time_ms


def delivery_figures(requests: list[ReceivedRequest], answered: dict[int, float]) -> dict[str, Any]:
    """Counts and delays (log to delivery) of the events of accepted requests."""
    delays: list[float] = []
    for request in requests:
        at = answered.get(request.index)  # None: cut off by the stop, unanswered
        if request.accepted and at is not None:
            for event in request.batch:
                stamp = time_ms(event.get("timestamp"))
                if stamp is not None:
                    delays.append(at - stamp / 1000)
    delays.sort()

    def percentile(fraction: float) -> float | None:
        return delays[min(int(fraction * len(delays)), len(delays) - 1)] if delays else None

    return {
        "within_1s": sum(1 for delay in delays if delay <= 1.0),
        "delay_p50": percentile(0.5),
        "delay_p95": percentile(0.95),
        "delay_max": delays[-1] if delays else None,
        "last_answer": max(answered.values(), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    answered: dict[int, float] = {}  # request index -> when it was answered (time.time())

    def on_request(request: ReceivedRequest) -> None:
        answered[request.index] = time.time()

    with CaptureServer(port=args.port, latency=args.latency, on_request=on_request) as server:
        print(f"ready {server.url}", flush=True)
        stop.wait()
    requests = server.requests
    result = {
        "events": len(server.events),
        "requests": len(requests),
        "max_in_flight": server.max_in_flight,
        **delivery_figures(requests, answered),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
