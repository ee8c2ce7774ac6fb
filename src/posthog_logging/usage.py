"""Token usage in the common SDK shapes, normalised to Mastra's ``UsageStats``.

Mastra's shape (what the mapping reads) is *gross*: ``inputTokens`` includes
cached input, and the cache counts (``inputDetails.cacheRead`` /
``cacheWrite``) are subsets of it.  Every shape is brought to that one
convention here, so the mapping can tell PostHog, with one explicit flag,
how to price it (``docs/mapping-rules.md`` Part 2 (i)):

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

from .values import is_mapping, is_number


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if is_mapping(value):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            dumped = None
        if is_mapping(dumped):
            return dumped
    attributes = getattr(value, "__dict__", None)
    return attributes if is_mapping(attributes) else {}


def _count(source: Mapping[str, Any], *keys: str) -> int | None:
    """The first key holding a finite number, as an int."""
    for key in keys:
        value = source.get(key)
        if type(value) is int and math.isfinite(value):  # isfinite: an int too large raises
            return value
        if is_number(value) and math.isfinite(value):
            return int(value)
    return None


def _first(*counts: int | None) -> int | None:
    for count in counts:
        if count is not None:
            return count
    return None


#: Every top-level key some shape's counts are read from.
_KNOWN_KEYS = frozenset(
    {
        "inputTokens",
        "outputTokens",
        "inputDetails",
        "outputDetails",
        "cachedInputTokens",
        "reasoningTokens",
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "input_tokens",
        "output_tokens",
        "input_tokens_details",
        "output_tokens_details",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "prompt_token_count",
        "promptTokenCount",
        "candidates_token_count",
        "candidatesTokenCount",
        "cached_content_token_count",
        "cachedContentTokenCount",
        "thoughts_token_count",
        "thoughtsTokenCount",
    }
)
#: The keys of Mastra's ``UsageStats`` and AI SDK v6 (nested counts), the usual shape.
_MASTRA_KEYS = frozenset({"inputTokens", "outputTokens", "inputDetails", "outputDetails"})
_NO_COUNTS: Mapping[str, Any] = {}
#: Values that are counts or absent, never a container of counts.
_SCALAR_TYPES = frozenset({int, float, type(None)})


def normalize_usage(usage: Any) -> dict[str, Any]:
    """Mastra ``UsageStats`` (gross input) from any usage shape in the module docstring."""
    source = _as_mapping(usage)
    if "usage_metadata" in source or "usageMetadata" in source:
        source = _as_mapping(source.get("usage_metadata") or source.get("usageMetadata"))
    if _KNOWN_KEYS.intersection(source) <= _MASTRA_KEYS:
        return _from_mastra(source)
    return _from_any_shape(source)


def _nested(value: Any) -> Mapping[str, Any]:
    """The counts nested in ``value``: none in a number (the cheap, common case)."""
    return _NO_COUNTS if type(value) in _SCALAR_TYPES else _as_mapping(value)


def _from_mastra(source: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`_from_any_shape` reads when only Mastra's (and AI SDK v6's) keys are
    there: the same counts, without probing every other provider's names."""
    sdk_input = _nested(source.get("inputTokens"))
    sdk_output = _nested(source.get("outputTokens"))
    mastra_input = _nested(source.get("inputDetails"))
    mastra_output = _nested(source.get("outputDetails"))
    input_tokens = _count(source, "inputTokens")
    output_tokens = _count(source, "outputTokens")
    if not (sdk_input or sdk_output or mastra_input or mastra_output):
        return _normalized(input_tokens=input_tokens, output_tokens=output_tokens)
    return _normalized(
        input_tokens=_first(input_tokens, _count(sdk_input, "total")),
        output_tokens=_first(output_tokens, _count(sdk_output, "total")),
        cache_read=_first(_count(mastra_input, "cacheRead"), _count(sdk_input, "cacheRead")),
        cache_write=_first(_count(mastra_input, "cacheWrite"), _count(sdk_input, "cacheWrite")),
        write_5m=_count(mastra_input, "cacheWrite5m"),
        write_1h=_count(mastra_input, "cacheWrite1h"),
        reasoning=_first(_count(mastra_output, "reasoning"), _count(sdk_output, "reasoning")),
    )


def _from_any_shape(source: Mapping[str, Any]) -> dict[str, Any]:
    """Every shape's counts, each read where the first shape that has it keeps it."""
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

    return _normalized(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=cache_read,
        cache_write=cache_write,
        write_5m=write_5m,
        write_1h=write_1h,
        reasoning=reasoning,
    )


#: The ``inputDetails`` keys of Mastra's ``UsageStats``, and a usage's cache counts
#: when it has none.
_CACHE_KEYS = ("cacheRead", "cacheWrite", "cacheWrite5m", "cacheWrite1h")
_NO_CACHE = (None, None, None, None)


def _normalized(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read: int | None = None,
    cache_write: int | None = None,
    write_5m: int | None = None,
    write_1h: int | None = None,
    reasoning: int | None = None,
) -> dict[str, Any]:
    """Mastra's ``UsageStats`` holding the counts that were found."""
    normalized: dict[str, Any] = {}
    if input_tokens is not None:
        normalized["inputTokens"] = input_tokens
    if output_tokens is not None:
        normalized["outputTokens"] = output_tokens
    cache = (cache_read, cache_write, write_5m, write_1h)
    if cache != _NO_CACHE:  # the usual usage has no cache counts: no details to build
        normalized["inputDetails"] = {
            key: value for key, value in zip(_CACHE_KEYS, cache, strict=True) if value is not None
        }
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
    if is_mapping(usage):
        server_tools = usage.get("server_tool_use")
        if is_mapping(server_tools):
            requests = _count(server_tools, "web_search_requests")
            if requests:
                return max(0, requests)
    if is_mapping(output):
        items = output.get("output")
        candidates = output.get("candidates")
    else:
        items, candidates = output, None
    if isinstance(items, list):
        searches = sum(
            1 for item in items if is_mapping(item) and item.get("type") == "web_search_call"
        )
        if searches:
            return searches
    if isinstance(candidates, list):
        for candidate in candidates:
            grounding = _as_mapping(_as_mapping(candidate).get("grounding_metadata"))
            if grounding.get("web_search_queries") or grounding.get("grounding_chunks"):
                return 1
    return 0
