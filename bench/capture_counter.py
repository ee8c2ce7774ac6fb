"""A capture server in its own process, so its CPU does not share the benchmark's GIL.

Prints ``ready <url>`` once listening; on SIGTERM prints the number of events it
accepted as JSON and exits.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from posthog_logging.devserver import CaptureServer


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with CaptureServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as server:
        print(f"ready {server.url}", flush=True)
        stop.wait()
        print(
            json.dumps({"events": len(server.events), "requests": len(server.requests)}), flush=True
        )


if __name__ == "__main__":
    main()
