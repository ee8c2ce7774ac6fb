"""Deliver through a log shipper: JSON lines on a pipe into ``posthog-logging send``.

The application does not talk to PostHog at all: it writes each span as one JSON
line (``SpanJsonFormatter``) to a stream, as it would to stdout for Vector, Fluent
Bit or Kafka.  Here that stream is a pipe into ``posthog-logging send -``, which
maps, batches and delivers the lines, and exits once the pipe closes with
everything delivered.

    python examples/log_shipper.py
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import posthog_logging as pl
from example_support import posthog_target

DOCUMENTS = ("Q3 revenue grew 12 %.", "Churn fell to 2 %.", "Two new regions launched.")


def main() -> None:
    api_key, host = posthog_target()
    consumer = subprocess.Popen(
        [sys.executable, "-m", "posthog_logging", "send", "-", "--host", host],
        stdin=subprocess.PIPE,
        text=True,
        env=dict(os.environ, POSTHOG_API_KEY=api_key),  # the key stays out of argv
    )
    assert consumer.stdin is not None
    lines = logging.StreamHandler(consumer.stdin)
    lines.setFormatter(pl.SpanJsonFormatter())
    spans = logging.getLogger("posthog_logging.spans")  # where the tracing API logs
    spans.addHandler(lines)
    spans.setLevel(logging.INFO)
    spans.propagate = False

    with pl.span("nightly summaries", type="workflow_run", metadata={"userId": "batch-job"}):
        for number, document in enumerate(DOCUMENTS):
            with pl.generation(
                f"summarize {number}", model="gpt-4o-mini", provider="openai", input=document
            ) as llm:
                llm.update(
                    output=f"Summary: {document}",
                    usage={"prompt_tokens": 9, "completion_tokens": 5},
                )

    spans.removeHandler(lines)
    lines.close()
    consumer.stdin.close()  # EOF: send delivers what it read, then exits
    print(f"posthog-logging send exited with {consumer.wait(timeout=60)}")


if __name__ == "__main__":
    main()
