"""The PostHog event envelope shared by every event kind (§1.16 "Each event").

Each event gets a deterministic ``uuid`` derived from what identifies it
(trace id, span id, event name), so a batch that is retried or replayed from
a spill file is de-duplicated by PostHog instead of counted twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..values import format_timestamp_ms

#: Namespace of the event uuids (uuid5 of this library's name).
EVENT_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/posthog-logging/")
LIB_PROPERTIES = {"$lib": "posthog-logging", "$lib_version": __version__}

#: A PostHog event as it goes on the wire.
Event = dict[str, Any]


@dataclass(frozen=True)
class MappingOptions:
    """The handler settings that change what the mapping produces."""

    mastra_compat: bool = False
    privacy_mode: bool = False
    default_distinct_id: str | None = None
    #: Part 2 (r): a span ended by an exception also sends a ``$exception`` event.
    capture_exceptions: bool = False
    #: Part 2 (s): inline base64 media in content becomes a placeholder.
    redact_media: bool = True


class SpanRejected(ValueError):
    """A record that cannot become an event; the message says why (never the payload)."""


def make_event(
    name: str,
    distinct_id: str,
    properties: dict[str, Any],
    timestamp_ms: int | None,
    identity: tuple[str, ...] | None,
) -> Event:
    """Wrap mapped properties in the envelope; ``identity`` None means a random uuid."""
    properties.update(LIB_PROPERTIES)
    if identity is None:
        event_uuid = uuid.uuid4()
    else:
        event_uuid = uuid.uuid5(EVENT_UUID_NAMESPACE, "\x1f".join((name, *identity)))
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": None if timestamp_ms is None else format_timestamp_ms(timestamp_ms),
        "uuid": str(event_uuid),
    }
