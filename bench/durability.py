"""What ``spill_dir`` survives, measured (issue 22): kill -9 in an outage, close() in an
outage, and a full disk.

    python bench/durability.py            # about two minutes
    python bench/durability.py --quick    # shorter runs

1. A process logging 500 spans/s against a capture server that never answers is
   killed with SIGKILL after 10 s; a new process with the same ``spill_dir`` and a
   healthy server resumes: how many of the spans logged more than 0.5 s before the
   kill arrive, and how many twice (by ``uuid``).  Without ``spill_dir`` for contrast.
2. Worker recycling in an outage: worker processes that each log 30 spans and
   close() while the server hangs or answers 503; how long close() takes.
3. ``spill_dir`` on a 64 KiB tmpfs in an outage (needs root to mount; without it the
   row says so): no exception, ``stats()`` against what the files hold, and whether
   ``replay`` converges.

Every process runs in a fresh interpreter; the capture servers run in this one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from run import dead_url, table

from posthog_logging.devserver import CaptureServer, ScriptedResponse

API_KEY = "phc_bench"

SPAN = """
def span(n):
    return {"id": f"{n:016x}", "traceId": "b" * 32, "parentSpanId": "f" * 16,
            "name": f"tool {n}", "type": "tool_call", "input": "i" * 300,
            "startTime": "2025-01-01T00:00:00.000Z", "endTime": "2025-01-01T00:00:01.000Z"}
"""

#: argv: host, spill_dir ("" for none), spans per second.
LOGGING_UNTIL_KILLED = (
    """
import logging, sys, time
from posthog_logging import PosthogLogHandler
"""
    + SPAN
    + """
spill_dir = sys.argv[2] or None
handler = PosthogLogHandler(api_key="phc_bench", host=sys.argv[1], spill_dir=spill_dir)
log = logging.getLogger("bench.killed")
log.addHandler(handler)
log.propagate = False
rate = float(sys.argv[3])
started = time.monotonic()
n = 0
while True:
    log.warning("x", extra={"span": span(n)})
    print(n, time.time(), flush=True)
    n += 1
    time.sleep(max(0.0, started + n / rate - time.monotonic()))
"""
)

#: argv: host, spill_dir.  Starts a handler (which resumes), waits, prints stats.
RESUMING = """
import json, sys, time
from pathlib import Path
from posthog_logging import PosthogLogHandler

spill_dir = Path(sys.argv[2])
started = time.monotonic()
handler = PosthogLogHandler(api_key="phc_bench", host=sys.argv[1], spill_dir=spill_dir)
while list(spill_dir.glob("*.jsonl*")) and time.monotonic() - started < 120:
    time.sleep(0.05)
resumed_in = time.monotonic() - started
handler.close()
print(json.dumps({"resumed_in": resumed_in, "resumed": handler.stats().get("resumed", 0)}))
"""

#: argv: host, spill_dir ("" for none).  One recycled worker: 30 spans, then close().
WORKER = (
    """
import json, logging, sys, time
from posthog_logging import PosthogLogHandler
"""
    + SPAN
    + """
handler = PosthogLogHandler(api_key="phc_bench", host=sys.argv[1], spill_dir=sys.argv[2] or None)
log = logging.getLogger("bench.worker")
log.addHandler(handler)
log.propagate = False
for n in range(30):
    log.warning("x", extra={"span": span(n)})
time.sleep(0.2)  # the worker's requests are out
started = time.monotonic()
handler.close()
print(json.dumps({"close": time.monotonic() - started, "stats": handler.stats()}))
"""
)

#: argv: host, spill_dir.  400 spans in an outage, then flush() and close().
FULL_DISK = (
    """
import json, logging, sys
from posthog_logging import PosthogLogHandler
"""
    + SPAN
    + """
handler = PosthogLogHandler(
    api_key="phc_bench", host=sys.argv[1], spill_dir=sys.argv[2], shutdown_timeout=1.0
)
log = logging.getLogger("bench.full")
log.addHandler(handler)
log.propagate = False
for n in range(400):
    log.warning("x", extra={"span": span(n)})
handler.flush()
handler.close()
print(json.dumps(handler.stats()))
"""
)


def python(program: str, *args: str, **options: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "POSTHOG_API_KEY": API_KEY},
        **options,
    )


def last_json(process: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(err)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["stderr"] = err
    return result


# ------------------------------------------------------------------ 1. kill -9
def killed_then_resumed(seconds: float, journal: bool) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        spill_dir = Path(directory) / "spill"
        with CaptureServer() as hanging:
            hanging.answer_by_default(ScriptedResponse(hang=True))
            logger = python(
                LOGGING_UNTIL_KILLED, hanging.url, str(spill_dir) if journal else "", "500"
            )
            assert logger.stdout is not None
            logged: dict[int, float] = {}
            started = time.monotonic()
            for line in logger.stdout:
                number, at = line.split()
                logged[int(number)] = float(at)
                if time.monotonic() - started >= seconds:
                    break
            killed_at = time.time()
            logger.send_signal(signal.SIGKILL)
            rest, _ = logger.communicate(timeout=60)
        for line in rest.splitlines():
            if len(line.split()) == 2:
                number, at = line.split()
                logged[int(number)] = float(at)
        expected = {f"{n:016x}" for n, at in logged.items() if at < killed_at - 0.5}
        resumed_in = "-"
        with CaptureServer() as healthy:
            if journal:
                result = last_json(python(RESUMING, healthy.url, str(spill_dir)))
                resumed_in = f"{result['resumed_in']:.1f} s"
            events = healthy.events
    by_uuid = Counter(event["uuid"] for event in events)
    spans = {event["properties"]["$ai_span_id"] for event in events}
    return [
        "spill_dir (journal)" if journal else "no spill_dir",
        f"{len(logged):,} in {seconds:g} s",
        f"{len(expected & spans):,} of {len(expected):,}",
        f"{sum(count - 1 for count in by_uuid.values())}",
        resumed_in,
    ]


# ------------------------------------------------------------- 2. recycling
def recycled_workers(workers: int, fault: str, journal: bool) -> list[str]:
    closes = []
    spilled = dropped = 0
    with tempfile.TemporaryDirectory() as directory, CaptureServer() as server:
        answer = ScriptedResponse(hang=True) if fault == "hang" else ScriptedResponse(503)
        server.answer_by_default(answer)
        for _ in range(workers):
            result = last_json(python(WORKER, server.url, directory if journal else ""))
            closes.append(result["close"])
            spilled += result["stats"]["spilled"]
            dropped += sum(result["stats"]["dropped"].values())
    return [
        "hanging" if fault == "hang" else "503 to every request",
        "spill_dir (journal)" if journal else "no spill_dir",
        f"{workers}",
        f"{sum(closes) / len(closes):.2f} s",
        f"{max(closes):.2f} s",
        f"{spilled:,} kept, {dropped:,} dropped",
    ]


# ------------------------------------------------------------- 3. full disk
@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path | None]:
    with tempfile.TemporaryDirectory() as directory:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            yield None
            return
        try:
            yield Path(directory)
        finally:
            subprocess.run(["umount", directory], check=False)


def full_disk() -> list[list[str]]:
    with tmpfs("64k") as disk:
        if disk is None:
            return [["tmpfs could not be mounted here (not root?)", "-", "-", "-", "-"]]
        spill_dir = disk / "spill"
        result = last_json(python(FULL_DISK, dead_url(), str(spill_dir)))
        lines = [
            line for path in spill_dir.glob("*.jsonl") for line in path.read_bytes().split(b"\n")
        ]
        torn = sum(1 for line in lines[-1:] if line)  # a last line without its newline
        complete = sum(
            len(path.read_bytes().split(b"\n")) - 1 for path in spill_dir.glob("*.jsonl")
        )
        with CaptureServer() as healthy:
            first = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "posthog_logging",
                    "replay",
                    "--host",
                    healthy.url,
                    str(spill_dir),
                ],
                env={**os.environ, "POSTHOG_API_KEY": API_KEY},
                capture_output=True,
                text=True,
                check=False,
            )
            delivered = len(healthy.events)
        left = list(spill_dir.iterdir()) if spill_dir.exists() else []
        exception = "Traceback" in result["stderr"]
        return [
            [
                "yes" if exception else "no",
                f"{result['spilled']} spilled + {sum(result['dropped'].values())} dropped"
                f" = {result['spilled'] + sum(result['dropped'].values())} of 400",
                f"{complete} complete lines, {torn} torn",
                f"{delivered} delivered (exit {first.returncode})",
                "converged (spill_dir empty)" if not left else f"{len(left)} files left",
            ]
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    print(
        f"posthog-logging durability — {platform.python_version()}, {os.cpu_count()} CPUs,"
        f" {time.strftime('%Y-%m-%d')}"
    )
    print(
        table(
            f"1. SIGKILL after {seconds:g} s at 500 spans/s against a hanging server, then a new"
            " process with the same spill_dir and a healthy server",
            [
                "variant",
                "logged",
                "logged >0.5 s before the kill and delivered",
                "twice",
                "resumed in",
            ],
            [killed_then_resumed(seconds, journal) for journal in (False, True)],
        ),
        flush=True,
    )
    workers = 3 if args.quick else 6
    print(
        table(
            "2. Worker recycling in an outage: close() of a worker that logged 30 spans"
            " (shutdown_timeout 10 s)",
            ["server", "variant", "workers", "close() mean", "close() max", "events"],
            [
                recycled_workers(workers, fault, journal)
                for fault in ("hang", "503")
                for journal in (False, True)
            ],
        ),
        flush=True,
    )
    print(
        table(
            "3. spill_dir on a 64 KiB tmpfs while the server is down: 400 spans of ~0.6 KB",
            ["exception", "stats()", "the files hold", "replay", "after replay"],
            full_disk(),
        )
    )


if __name__ == "__main__":
    main()
