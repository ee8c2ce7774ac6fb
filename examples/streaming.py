"""A streaming generation: the first chunk's time becomes ``$ai_time_to_first_token``.

python examples/streaming.py
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import posthog_logging as pl
from example_support import setup


def fake_stream(prompt: str) -> Iterator[str]:
    """Stands in for a streaming completion: a pause, then tokens."""
    time.sleep(0.12)  # the model "thinks" before its first token
    for word in ("Streaming ", "keeps ", "users ", "engaged."):
        time.sleep(0.01)
        yield word


def main() -> None:
    setup()
    prompt = "Why stream LLM output?"
    with (
        pl.span("answer question", type="agent_run", metadata={"userId": "reader-1"}),
        pl.generation(
            "llm: stream",
            model="claude-3-5-sonnet",
            provider="anthropic",
            input=prompt,
            streaming=True,
        ) as llm,
    ):
        for token in fake_stream(prompt):
            llm.chunk(token)
            print(token, end="", flush=True)
        llm.update(
            usage={"input_tokens": 8, "output_tokens": 4}, attributes={"finishReason": "end_turn"}
        )
    print()


if __name__ == "__main__":
    main()
