"""Token usage in the common SDK shapes, normalised to Mastra's ``UsageStats``.

Mastra's shape (what the mapping reads) is *gross*: ``inputTokens`` includes
cached input, and the cache counts (``inputDetails.cacheRead`` /
``cacheWrite``) are subsets of it.  Every shape is brought to that one
convention here, so the mapping can tell PostHog, with one explicit flag,
how to price it (mapping-spec Part 2 (i)):

==========================  ==========================================================
shape                       input tokens
==========================  ==========================================================
Mastra ``UsageStats``       ``inputTokens`` (gross already)
AI SDK v5                   ``inputTokens`` (gross; ``cachedInputTokens`` a subset)
AI SDK v6                   ``inputTokens.total`` (gross; ``cacheRead``/``cacheWrite``)
OpenAI chat / Responses     ``prompt_tokens`` / ``input_tokens`` (gross; ``cached_tokens``,
                            ``cache_write_tokens``)
Anthropic                   ``input_tokens`` + cache reads + cache writes (Anthropic's
                            ``input_tokens`` leaves both out)
Gemini ``usage_metadata``   ``prompt_token_count`` (gross; ``cached_content_token_count``)
==========================  ==========================================================

SDK response objects (pydantic models, dataclasses) are read through their
attributes or ``model_dump()``; an unknown shape keeps whatever integer
counts it recognises and never raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .values import is_number


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            dumped = None
        if isinstance(dumped, Mapping):
            return dumped
    attributes = getattr(value, "__dict__", None)
    return attributes if isinstance(attributes, Mapping) else {}


def _count(source: Mapping[str, Any], *keys: str) -> int | None:
    """The first key holding a finite number, as an int."""
    for key in keys:
        value = source.get(key)
        if is_number(value) and math.isfinite(value):
            return int(value)
    return None


def _first(*counts: int | None) -> int | None:
    return next((count for count in counts if count is not None), None)


def normalize_usage(usage: Any) -> dict[str, Any]:
    """Mastra ``UsageStats`` (gross input) from any usage shape in the module docstring."""
    source = _as_mapping(usage)
    if "usage_metadata" in source or "usageMetadata" in source:
        source = _as_mapping(source.get("usage_metadata") or source.get("usageMetadata"))
    # AI SDK v6 nests the counts: inputTokens = {total, noCache, cacheRead, cacheWrite}.
    sdk_input = _as_mapping(source.get("inputTokens"))
    sdk_output = _as_mapping(source.get("outputTokens"))
    input_details = _as_mapping(
        source.get("prompt_tokens_details") or source.get("input_tokens_details")
    )
    output_details = _as_mapping(
        source.get("completion_tokens_details") or source.get("output_tokens_details")
    )
    mastra_input = _as_mapping(source.get("inputDetails"))
    mastra_output = _as_mapping(source.get("outputDetails"))
    anthropic_writes = _as_mapping(source.get("cache_creation"))

    cache_read = _first(
        _count(mastra_input, "cacheRead"),
        _count(sdk_input, "cacheRead"),
        _count(source, "cachedInputTokens", "cache_read_input_tokens"),
        _count(source, "cached_content_token_count", "cachedContentTokenCount"),
        _count(input_details, "cached_tokens"),
    )
    cache_write = _first(
        _count(mastra_input, "cacheWrite"),
        _count(sdk_input, "cacheWrite"),
        _count(source, "cache_creation_input_tokens"),
        _count(input_details, "cache_write_tokens"),
    )
    write_5m = _first(
        _count(mastra_input, "cacheWrite5m"),
        _count(anthropic_writes, "ephemeral_5m_input_tokens"),
    )
    write_1h = _first(
        _count(mastra_input, "cacheWrite1h"),
        _count(anthropic_writes, "ephemeral_1h_input_tokens"),
    )
    reasoning = _first(
        _count(mastra_output, "reasoning"),
        _count(sdk_output, "reasoning"),
        _count(source, "reasoningTokens"),
        _count(output_details, "reasoning_tokens"),
        _count(source, "thoughts_token_count", "thoughtsTokenCount"),
    )

    input_tokens = _first(
        _count(source, "inputTokens", "prompt_tokens"),
        _count(sdk_input, "total"),
        _count(source, "prompt_token_count", "promptTokenCount"),
    )
    output_tokens = _first(
        _count(source, "outputTokens", "completion_tokens", "output_tokens"),
        _count(sdk_output, "total"),
        # Gemini counts thinking apart (thoughts_token_count, read as reasoning above);
        # PostHog adds reasoning to the output of Gemini 2.5+ models itself.
        _count(source, "candidates_token_count", "candidatesTokenCount"),
    )
    anthropic_input = _count(source, "input_tokens")
    if input_tokens is None and anthropic_input is not None:
        input_tokens = anthropic_input
        if "cache_read_input_tokens" in source or "cache_creation_input_tokens" in source:
            # Anthropic's input_tokens excludes the cache: add it back (gross).
            input_tokens += (cache_read or 0) + (cache_write or 0)

    normalized: dict[str, Any] = {}
    if input_tokens is not None:
        normalized["inputTokens"] = input_tokens
    if output_tokens is not None:
        normalized["outputTokens"] = output_tokens
    details = {
        key: value
        for key, value in (
            ("cacheRead", cache_read),
            ("cacheWrite", cache_write),
            ("cacheWrite5m", write_5m),
            ("cacheWrite1h", write_1h),
        )
        if value is not None
    }
    if details:
        normalized["inputDetails"] = details
    if reasoning is not None:
        normalized["outputDetails"] = {"reasoning": reasoning}
    return normalized


def web_search_count(usage: Any, output: Any) -> int:
    """Web searches the provider reports, counted as the ``posthog.ai`` wrappers count
    them (mapping-spec Part 2 (q)); 0 when it reports none.

    Anthropic counts them in ``usage.server_tool_use.web_search_requests``; an
    OpenAI Responses output has one ``web_search_call`` item per search; Gemini
    bills per grounded request, so a candidate with grounding metadata (search
    queries or chunks) counts once.  ``usage`` and ``output`` are plain data.
    """
    if isinstance(usage, Mapping):
        server_tools = usage.get("server_tool_use")
        if isinstance(server_tools, Mapping):
            requests = _count(server_tools, "web_search_requests")
            if requests:
                return max(0, requests)
    if isinstance(output, Mapping):
        items = output.get("output")
        candidates = output.get("candidates")
    else:
        items, candidates = output, None
    if isinstance(items, list):
        searches = sum(
            1
            for item in items
            if isinstance(item, Mapping) and item.get("type") == "web_search_call"
        )
        if searches:
            return searches
    if isinstance(candidates, list):
        for candidate in candidates:
            grounding = _as_mapping(_as_mapping(candidate).get("grounding_metadata"))
            if grounding.get("web_search_queries") or grounding.get("grounding_chunks"):
                return 1
    return 0
