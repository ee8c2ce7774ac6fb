"""An asyncio agent that calls tools in parallel; the spans still nest correctly.

Each ``asyncio.gather`` task copies the current context, so every tool span
finds the agent span as its parent without any bookkeeping.

    python examples/async_agent.py
"""

from __future__ import annotations

import asyncio

import posthog_logging as pl
from example_support import setup


@pl.traced(type="tool_call")
async def search(source: str, query: str) -> list[str]:
    await asyncio.sleep(0.01 * len(source))
    if source == "archive":
        raise TimeoutError("archive search timed out")
    return [f"{source}: result for {query!r}"]


@pl.traced(type="mcp_tool_call", name="mcp: summarise")
async def summarise(texts: list[str]) -> str:
    await asyncio.sleep(0.005)
    return f"{len(texts)} findings"


async def research(query: str) -> str:
    async with pl.span(
        "research agent",
        type="agent_run",
        input=query,
        metadata={"userId": "analyst-1", "sessionId": "s-9"},
    ) as agent:
        outcomes = await asyncio.gather(
            *(search(source, query) for source in ("web", "docs", "archive")),
            return_exceptions=True,
        )
        found = [hit for outcome in outcomes if isinstance(outcome, list) for hit in outcome]
        async with pl.generation(
            "llm: write summary",
            model="gpt-4o-mini",
            provider="openai",
            input={"messages": [{"role": "user", "content": str(found)}]},
        ) as llm:
            summary = await summarise(found)
            llm.update(output=summary, usage={"inputTokens": 30, "outputTokens": 6})
        agent.update(output=summary)
        return summary


def main() -> None:
    setup()
    print(asyncio.run(research("vector databases")))


if __name__ == "__main__":
    main()
