"""posthog's Anthropic wrapper through logging: cache tokens priced the Anthropic way.

python examples/anthropic_messages.py
"""

from __future__ import annotations

from posthog.ai.anthropic import Anthropic

import posthog_logging as pl
from example_support import setup
from fake_models import anthropic_http_client


def main() -> None:
    setup()
    client = Anthropic(
        api_key="sk-ant-example",
        posthog_client=pl.posthog_client(),
        http_client=anthropic_http_client(["Bonjour, Paris !"]),
    )
    with pl.span("translate", type="agent_run", metadata={"userId": "u-fr", "sessionId": "s-9"}):
        reply = client.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=100,
            system="Translate to French.",
            messages=[{"role": "user", "content": "Hello, Paris!"}],
        )
    print("".join(block.text for block in reply.content if block.type == "text"))


if __name__ == "__main__":
    main()
