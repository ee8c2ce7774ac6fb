"""The event envelope of every event kind (``docs/mapping-rules.md`` §1.16).

Each event gets a deterministic ``uuid`` derived from what identifies it
(trace id, span id, event name), so a batch that is retried or replayed from
a spill file is de-duplicated by PostHog instead of counted twice.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..values import format_timestamp_ms

#: Namespace of the event uuids (uuid5 of this library's name).
EVENT_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/posthog-logging/")
#: SHA-1 state after the namespace, uuid5's first input: each event's uuid continues it.
_NAMESPACE_SHA1 = hashlib.sha1(EVENT_UUID_NAMESPACE.bytes, usedforsecurity=False)
#: uuid5's variant bits (``10`` on top) applied to the hex digit that holds them.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
LIB_PROPERTIES = {"$lib": "posthog-logging", "$lib_version": __version__}

#: A PostHog event as it goes on the wire.
Event = dict[str, Any]


@dataclass(frozen=True)
class MappingOptions:
    """The handler settings that change what the mapping produces."""

    mastra_compat: bool = False
    default_distinct_id: str | None = None
    #: Part 2 (r): a span ended by an exception also sends a ``$exception`` event.
    capture_exceptions: bool = False
    #: Part 2 (s): inline base64 media in content becomes a placeholder.
    redact_media: bool = True


class RecordRejected(ValueError):
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
        event_uuid = str(uuid.uuid4())
    else:
        event_uuid = event_uuid5("\x1f".join((name, *identity)))
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": None if timestamp_ms is None else format_timestamp_ms(timestamp_ms),
        "uuid": event_uuid,
    }


def event_uuid5(identity: str) -> str:
    """``str(uuid.uuid5(EVENT_UUID_NAMESPACE, identity))``, without building a ``UUID``:
    the SHA-1 of namespace and identity, with uuid5's version and variant bits."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(identity.encode())
    text = digest.hexdigest()
    return (
        f"{text[:8]}-{text[8:12]}-5{text[13:16]}-"
        f"{_VARIANT_DIGIT[text[16]]}{text[17:20]}-{text[20:32]}"
    )
