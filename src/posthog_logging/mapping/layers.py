"""``docs/mapping-rules.md`` §1.12 and Part 2 (c): passthrough and the library's keys.

An event's properties are built from *layers* in the order the rules list
them: the library's own keys, or user data passed through (tags, attributes,
metadata).  Compat mode merges the layers in order, so a later passthrough
overwrites the library's keys exactly as ``@mastra/posthog`` does; default mode
merges the passthrough layers first and the library's keys on top, and drops
``$``-prefixed passthrough keys other than ``$groups`` and the documented
PostHog properties of :data:`POSTHOG_PASSTHROUGH` (Part 2 (l)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..values import JsonValue, js_string, json_safe

#: The ``$`` keys passthrough (metadata, attributes, tags) may set in default mode:
#: properties PostHog documents and reads, which the library never computes itself
#: (or, for ``$ai_session_id``, only from ``sessionId``; a library key always wins).
POSTHOG_PASSTHROUGH = frozenset(
    {
        # Group analytics: https://posthog.com/docs/product-analytics/group-analytics
        "$groups",
        # Session replay link: https://posthog.com/docs/llm-analytics/link-session-replay
        "$session_id",
        "$window_id",
        # Sessions view: https://posthog.com/docs/llm-analytics/sessions
        "$ai_session_id",
        # Custom pricing: https://posthog.com/docs/llm-analytics/calculating-costs
        "$ai_input_token_price",
        "$ai_output_token_price",
        "$ai_cache_read_token_price",
        "$ai_cache_write_token_price",
        # $ai_generation properties: https://posthog.com/docs/llm-analytics/generations
        "$ai_http_status",
        "$ai_base_url",
        "$ai_request_url",
        "$ai_model_parameters",
        "$ai_framework",
    }
)


@dataclass
class Layer:
    """One source of properties, in spec order."""

    passthrough: bool
    properties: dict[str, JsonValue]


def library(properties: dict[str, JsonValue]) -> Layer:
    """Keys the library computes."""
    return Layer(False, properties)


def passthrough(source: Mapping[Any, Any], skip: frozenset[str] = frozenset()) -> Layer:
    """User keys copied as they are (values made JSON-safe), minus ``skip``."""
    return Layer(
        True, {js_string(key): json_safe(value) for key, value in source.items() if key not in skip}
    )


def merge_layers(layers: list[Layer], compat: bool) -> dict[str, JsonValue]:
    """Merge layers: in order (compat), or passthrough under library (default)."""
    merged: dict[str, JsonValue] = {}
    if compat:
        for layer in layers:
            merged.update(layer.properties)
        return merged
    for layer in layers:
        if layer.passthrough:
            merged.update(
                (key, value)
                for key, value in layer.properties.items()
                if not key.startswith("$") or key in POSTHOG_PASSTHROUGH
            )
    for layer in layers:
        if not layer.passthrough:
            merged.update(layer.properties)
    return merged
