"""``docs/mapping-rules.md`` §1.12 and Part 2 (c), (l): passthrough and the library's keys.

An event's properties are built from *layers* in the order the rules list
them: the library's own keys, or user data passed through (tags, attributes,
metadata).  Compat mode merges the layers in order, so a later passthrough
overwrites the library's keys exactly as ``@mastra/posthog`` does.  Default
mode merges the passthrough layers first and the library's keys on top: every
``$`` key passes (``$ai_prompt_name``, ``$ai_experiment_id``, custom prices,
properties PostHog adds later ...) except the keys the library owns
(:data:`LIBRARY_OWNED`), which never come from passthrough.  A passthrough value
dropped for that, or for a ``$`` key the library set on the event, is handed to
``on_dropped`` (counted and reported once per key by the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..contract import DIAGNOSTICS_LOGGER
from ..values import PLAIN_TYPES, JsonValue, js_string, json_safe

_log = logging.getLogger(DIAGNOSTICS_LOGGER)

#: Part 2 (l): properties only the library sets, on every event kind: ids, timing,
#: the error flag and message, token counts and how they are priced, model and
#: provider, content, tool definitions, the person flag and the sample rate.
LIBRARY_OWNED = frozenset(
    {
        "$ai_trace_id",
        "$ai_parent_id",
        "$ai_span_id",
        "$ai_generation_id",
        "$ai_span_name",
        "$ai_latency",
        "$ai_time_to_first_token",
        "$ai_is_error",
        "$ai_error",
        "$ai_input_tokens",
        "$ai_output_tokens",
        "$ai_reasoning_tokens",
        "$ai_cache_read_input_tokens",
        "$ai_cache_creation_input_tokens",
        "$ai_cache_creation_5m_input_tokens",
        "$ai_cache_creation_1h_input_tokens",
        "$ai_cache_reporting_exclusive",
        "$ai_model",
        "$ai_provider",
        "$ai_input",
        "$ai_output_choices",
        "$ai_input_state",
        "$ai_output_state",
        "$ai_tools",
        "$process_person_profile",
        "$ai_trace_sample_rate",
    }
)


class DroppedProperties:
    """Told of each passthrough value default mode drops (Part 2 (l)): counts it
    through ``count`` and logs one warning per property name."""

    def __init__(self, count: Callable[[], object] = lambda: None) -> None:
        self._count = count
        self._reported: set[str] = set()

    def __call__(self, key: str) -> None:
        self._count()
        if key not in self._reported:
            self._reported.add(key)
            _log.warning(
                "posthog-logging: passthrough property %r dropped: the library sets it "
                "(counted in stats()['dropped_properties']; reported once per property)",
                key,
            )


#: One source of properties, in spec order: whether it is user data passed through
#: (else the library's own keys), and its properties.  A plain tuple: an event is
#: built from several, and a class's ``__init__`` costs several times as much.
Layer = tuple[bool, dict[str, JsonValue]]
#: A layer's first item for user data passed through, and for the library's keys.
PASSTHROUGH = True
LIBRARY = False


def passthrough(source: Mapping[Any, Any], skip: frozenset[str] = frozenset()) -> Layer:
    """User keys copied as they are (values made JSON-safe), minus ``skip``; string keys
    and plain values, the usual, are taken without a call."""
    return PASSTHROUGH, {
        key if type(key) is str else js_string(key): value
        if type(value) in PLAIN_TYPES
        else json_safe(value)
        for key, value in source.items()
        if key not in skip
    }


def merge_layers(
    layers: list[Layer], compat: bool, on_dropped: Callable[[str], None]
) -> dict[str, JsonValue]:
    """Merge layers: in order (compat), or passthrough under library (default).

    The layers are the caller's, made for this one event: default mode merges the
    library's layers into the first one's dict, and returns that dict itself when
    no passthrough key comes before them.
    """
    merged: dict[str, JsonValue] = {}
    if compat:
        for _, properties in layers:
            merged.update(properties)
        return merged
    passed_dollar_keys: list[str] = []
    library_keys: dict[str, JsonValue] | None = None
    for is_passthrough, properties in layers:
        if not is_passthrough:
            if library_keys is None:
                library_keys = properties
            else:
                library_keys.update(properties)
            continue
        for key, value in properties.items():
            if key[:1] != "$":
                merged[key] = value
            elif key in LIBRARY_OWNED:
                on_dropped(key)
            else:
                merged[key] = value
                passed_dollar_keys.append(key)
    if library_keys is None:
        return merged
    if not merged:
        return library_keys
    for key in passed_dollar_keys:  # e.g. $ai_session_id when sessionId set it
        if key in library_keys and merged[key] != library_keys[key]:
            on_dropped(key)
    merged.update(library_keys)
    return merged
