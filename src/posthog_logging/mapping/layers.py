"""§1.12 and Part 2 (c): how passthrough data and the library's keys combine.

An event's properties are built from *layers* in the order the spec lists
them: the library's own keys, or user data passed through (tags, attributes,
metadata).  Compat mode merges the layers in order, so a later passthrough
overwrites the library's keys exactly as ``@mastra/posthog`` does; default mode
merges the passthrough layers first and the library's keys on top, and drops
``$``-prefixed passthrough keys other than ``$groups``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..values import JsonValue, js_string, json_safe

#: The one ``$`` key passthrough may set in default mode (PostHog group analytics).
GROUPS_KEY = "$groups"


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
                if not key.startswith("$") or key == GROUPS_KEY
            )
    for layer in layers:
        if not layer.passthrough:
            merged.update(layer.properties)
    return merged
