"""Streaming through posthog's OpenAI wrapper: one event when the stream ends.

python examples/openai_streaming.py

The wrapper times the first chunk (``$ai_time_to_first_token``), joins the text
and reads the usage chunk; the handler delivers the event inside the trace.
"""

from __future__ import annotations

from posthog.ai.openai import OpenAI

import posthog_logging as pl
from example_support import setup
from fake_models import openai_http_client


def main() -> None:
    setup()
    model_http = openai_http_client(
        ["Streaming keeps users engaged while the model thinks."], first_token_delay=0.15
    )
    client = OpenAI(
        api_key="sk-example",
        posthog_client=pl.posthog_client(),
        http_client=model_http,
    )
    with pl.span("answer question", type="agent_run", metadata={"userId": "reader-1"}):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Why stream LLM output?"}],
            stream=True,
            stream_options={"include_usage": True},
            posthog_properties={"$ai_span_name": "llm: stream"},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
