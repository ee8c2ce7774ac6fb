"""Per-call cost of posthog's OpenAI wrapper delivered through logging, vs a plain posthog.Client.

    python bench/wrapper_overhead.py            # 3,000 calls per variant, 5 rounds
    python bench/wrapper_overhead.py --calls 500 --rounds 1

Every variant makes the same chat completion calls through the real ``openai``
SDK, whose HTTP is answered in-process by a canned response (so the model costs
nothing and the figures are the instrumentation's).  Variants:

* ``openai`` - the SDK alone, no instrumentation: the floor;
* ``wrapper, capture discarded`` - the wrapper with a client whose ``capture``
  does nothing: what the wrapper itself costs, before any delivery;
* ``posthog.Client`` - ``posthog.ai.openai.OpenAI(posthog_client=posthog.Posthog(...))``;
* ``pl.posthog_client()`` - the same wrapper with ``pl.posthog_client()`` and a
  ``PosthogLogHandler``;
* ``... inside pl.span`` - the same, every call inside one enclosing ``pl.span``
  (the trace is joined on every call).

Each variant runs in a fresh interpreter, delivering to its own capture server
in another process (``capture_counter.py``); the time to deliver everything
after the last call (``shutdown()`` / ``close()``) is reported separately.
The variants take turns for several rounds and each figure is the median over
rounds, so a busy moment on the machine does not land on one variant only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import posthog
from posthog.ai.openai import OpenAI as WrappedOpenAI
from posthog.client import Client
from posthog.version import VERSION as POSTHOG_VERSION

import posthog_logging as pl

HERE = Path(__file__).resolve().parent
API_KEY = "phc_bench"
VARIANTS = (
    "openai",
    "wrapper, capture discarded",
    "posthog.Client",
    "pl.posthog_client()",
    "pl.posthog_client() inside pl.span",
)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. " * 6},
    {"role": "user", "content": "Tell me about logging. " * 16},
]
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Logging tells you. " * 12},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 420, "completion_tokens": 96, "total_tokens": 516},
    }
).encode()


def model_http() -> Any:
    """The canned model: every request gets the same completion, built once.

    (An ``httpx`` client: openai 1.x takes nothing else, later versions adapt it.)
    """
    headers = {"content-type": "application/json"}
    return httpx.Client(
        transport=httpx.MockTransport(
            lambda _: httpx.Response(200, headers=headers, content=COMPLETION)
        )
    )


# ------------------------------------------------------------- one variant


class DiscardingClient:
    """A ``posthog_client`` that drops every event: the wrapper's own cost."""

    privacy_mode = False

    def capture(self, event: str, **kwargs: Any) -> None:
        return None


def run_variant(variant: str, url: str, calls: int) -> dict[str, float]:
    """Make ``calls`` calls in this process; caller time per call, then delivery time."""
    finish: Callable[[], None] = lambda: None  # noqa: E731
    client: Any
    if variant == "openai":
        client = openai.OpenAI(api_key="sk-bench", http_client=model_http())
    elif variant == "wrapper, capture discarded":
        client = WrappedOpenAI(
            api_key="sk-bench",
            posthog_client=cast(Client, DiscardingClient()),
            http_client=model_http(),
        )
    elif variant == "posthog.Client":
        ph = posthog.Posthog(API_KEY, host=url)
        client = WrappedOpenAI(api_key="sk-bench", posthog_client=ph, http_client=model_http())
        finish = ph.shutdown
    else:
        handler = pl.PosthogLogHandler(api_key=API_KEY, host=url)
        spans = logging.getLogger("posthog_logging.spans")
        spans.addHandler(handler)
        spans.setLevel(logging.INFO)
        spans.propagate = False
        client = WrappedOpenAI(
            api_key="sk-bench", posthog_client=pl.posthog_client(), http_client=model_http()
        )
        finish = handler.close

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    for _ in range(min(200, calls)):  # warm up: imports, pools, caches
        call()
    outer = pl.span("bench", type="agent_run") if variant.endswith("inside pl.span") else None
    if outer is not None:
        outer.__enter__()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        call()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if outer is not None:
        outer.__exit__(None, None, None)
    start = time.perf_counter()
    finish()
    return {
        "cpu_us": cpu / calls * 1e6,
        "wall_us": wall / calls * 1e6,
        "deliver_s": time.perf_counter() - start,
    }


# ------------------------------------------------------------ orchestration


def measure(variant: str, calls: int) -> dict[str, float]:
    """``variant`` in a fresh interpreter, against its own capture server process."""
    counter = subprocess.Popen(
        [sys.executable, str(HERE / "capture_counter.py")], stdout=subprocess.PIPE, text=True
    )
    assert counter.stdout is not None
    url = counter.stdout.readline().split()[1]
    try:
        output = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--url", url, "--calls", str(calls)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        counter.terminate()
        delivered = json.loads(counter.stdout.readline() or "{}")
        counter.wait()
    result: dict[str, float] = json.loads(output.splitlines()[-1])
    result["events"] = delivered.get("events", 0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.url, args.calls)))
        return
    rounds = [
        {variant: measure(variant, args.calls) for variant in VARIANTS}
        for _ in range(max(1, args.rounds))
    ]
    results = {
        variant: {
            key: statistics.median(r[variant][key] for r in rounds) for key in rounds[0][variant]
        }
        for variant in VARIANTS
    }
    floor = results["openai"]
    plain = results["posthog.Client"]
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"openai {openai.__version__}, posthog {POSTHOG_VERSION}, {args.calls} calls per variant, "
        f"median of {args.rounds} rounds\n"
    )
    print(
        "| variant | caller CPU / call | over the SDK alone | wall / call | over the SDK alone "
        "| vs posthog.Client (overhead) | events delivered | delivery after last call |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for variant, r in results.items():
        over_cpu = r["cpu_us"] - floor["cpu_us"]
        over_wall = r["wall_us"] - floor["wall_us"]
        base = plain["wall_us"] - floor["wall_us"]
        ratio = f"{over_wall / base:.2f}x" if variant in VARIANTS[2:] and base > 0 else "-"
        print(
            f"| {variant} | {r['cpu_us']:.0f} µs | {over_cpu:+.0f} µs | {r['wall_us']:.0f} µs "
            f"| {over_wall:+.0f} µs | {ratio} | {int(r['events'])} | {r['deliver_s']:.2f} s |"
        )


if __name__ == "__main__":
    main()
