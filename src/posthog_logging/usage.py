"""Token usage in the common SDK shapes, normalised to Mastra's ``UsageStats``.

Mastra's shape (what the mapping reads) is gross: ``inputTokens`` includes
cached input, and cache counts are subsets of it.  Anthropic reports
``input_tokens`` *without* cache reads and writes, so those are added back.
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
    """The first key holding a number, as an int."""
    for key in keys:
        value = source.get(key)
        if is_number(value) and math.isfinite(value):
            return int(value)
    return None


def normalize_usage(usage: Any) -> dict[str, Any]:
    """Mastra ``UsageStats`` from Mastra/AI-SDK, OpenAI (chat and responses) or Anthropic usage."""
    source = _as_mapping(usage)
    input_details = _as_mapping(
        source.get("prompt_tokens_details") or source.get("input_tokens_details")
    )
    output_details = _as_mapping(
        source.get("completion_tokens_details") or source.get("output_tokens_details")
    )
    mastra_input = _as_mapping(source.get("inputDetails"))
    mastra_output = _as_mapping(source.get("outputDetails"))

    cache_read = _count(mastra_input, "cacheRead")
    if cache_read is None:
        cache_read = _count(source, "cachedInputTokens", "cache_read_input_tokens")
    if cache_read is None:
        cache_read = _count(input_details, "cached_tokens")
    cache_write = _count(mastra_input, "cacheWrite")
    if cache_write is None:
        cache_write = _count(source, "cache_creation_input_tokens")
    reasoning = _count(mastra_output, "reasoning")
    if reasoning is None:
        reasoning = _count(source, "reasoningTokens")
    if reasoning is None:
        reasoning = _count(output_details, "reasoning_tokens")

    input_tokens = _count(source, "inputTokens", "prompt_tokens")
    output_tokens = _count(source, "outputTokens", "completion_tokens", "output_tokens")
    anthropic_input = _count(source, "input_tokens")
    if input_tokens is None and anthropic_input is not None:
        input_tokens = anthropic_input
        if "cache_read_input_tokens" in source or "cache_creation_input_tokens" in source:
            input_tokens += (cache_read or 0) + (cache_write or 0)

    normalized: dict[str, Any] = {}
    if input_tokens is not None:
        normalized["inputTokens"] = input_tokens
    if output_tokens is not None:
        normalized["outputTokens"] = output_tokens
    details = {
        key: value
        for key, value in (("cacheRead", cache_read), ("cacheWrite", cache_write))
        if value is not None
    }
    if details:
        normalized["inputDetails"] = details
    if reasoning is not None:
        normalized["outputDetails"] = {"reasoning": reasoning}
    return normalized
