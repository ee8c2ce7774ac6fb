"""One trace across threads and processes: embeddings in a thread pool, a worker process.

The request embeds its document chunks in a ``pl.ContextThreadPoolExecutor``
(so each ``$ai_embedding`` nests under the request), then hands the question to
a worker process with a W3C ``traceparent`` header; the worker continues the
same trace with ``pl.span(..., traceparent=header)``.

python examples/rag_worker.py
"""

from __future__ import annotations

import logging.config
import os
import subprocess
import sys

import posthog_logging as pl
from example_support import logging_config, posthog_target

USER = {"userId": "reader-3", "sessionId": "support-chat-12", "$session_id": "replay-5f1c"}
CHUNKS = ["Returns are free within 30 days.", "Refunds take 5 business days."]


def embed(chunk: str) -> list[float]:
    with pl.embedding(
        "embed chunk", model="text-embedding-3-small", provider="openai", input=chunk
    ) as embedding:
        vector = [len(chunk) / 100, 0.5]  # stands in for the embeddings API
        embedding.update(usage={"prompt_tokens": len(chunk.split()), "total_tokens": 8})
    return vector


def worker(header: str) -> None:
    """The other process: continue the caller's trace and answer."""
    with (
        pl.span("worker: answer", type="workflow_step", traceparent=header, metadata=USER),
        pl.generation(
            "llm: answer",
            model="claude-sonnet-4-5",
            provider="anthropic",
            input=[{"role": "user", "content": "How long do refunds take?"}],
            parameters={"temperature": 0, "maxOutputTokens": 200},
        ) as llm,
    ):
        llm.update(
            output="Refunds take 5 business days.",
            usage={"input_tokens": 30, "output_tokens": 9, "cache_read_input_tokens": 400},
            stop_reason="end_turn",
        )
    print("worker answered")


def main() -> None:
    api_key, host = posthog_target()
    logging.config.dictConfig(logging_config(api_key, host))
    with pl.span("request: refund question", type="agent_run", metadata=USER):
        with pl.ContextThreadPoolExecutor(max_workers=2) as pool:
            vectors = list(pool.map(embed, CHUNKS))
        with pl.span("dispatch to worker", type="tool_call", input={"chunks": len(vectors)}):
            header = pl.traceparent()
            assert header is not None
            environment = dict(os.environ, POSTHOG_API_KEY=api_key, POSTHOG_HOST=host)
            subprocess.run(
                [sys.executable, __file__, "--worker", header], env=environment, check=True
            )
    print(f"embedded {len(vectors)} chunks; trace {header.split('-')[1]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        api_key, host = os.environ["POSTHOG_API_KEY"], os.environ["POSTHOG_HOST"]
        logging.config.dictConfig(logging_config(api_key, host))
        worker(sys.argv[2])
    else:
        main()
