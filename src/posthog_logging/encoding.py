"""Events as JSON text: encoded once, as soon as they are built, and cut to fit.

Events are encoded on the listener thread (or on whichever thread does its
work: the closing thread aborting the open spans, the caller's when no
listener could start, replay's): the encoded size is what the memory bound and
PostHog's size limits are about, and a request body is then just the encoded
events joined (:func:`.transport.encode_body`).  The journal stores them as
they are, one per line.
"""

from __future__ import annotations

import json
from typing import Any

#: An event as JSON text, ready to be joined into a request body.
EncodedEvent = str
#: PostHog's AI ingestion path accepts events up to 8 MB; keep clear of it.
MAX_EVENT_BYTES = 7_900_000
#: Appended to a property cut to make its event fit.
TRUNCATION_MARKER = "…[truncated {cut} chars by posthog-logging]"


def encode_event(event: dict[str, Any]) -> EncodedEvent:
    """JSON text of one event.

    Events are JSON-safe already (the mapping made them so), which lets the C
    encoder do all the work; the ``posthog`` client's own encoder walks every
    value in Python first, which is slow on large prompts.  ASCII escapes keep
    even lone surrogates from user strings valid JSON.
    """
    return json.dumps(event, separators=(",", ":"), default=str)


def fit_event(event: dict[str, Any], max_bytes: int) -> tuple[EncodedEvent, int]:
    """Encode ``event`` so it fits ``max_bytes``; returns the text and how many
    properties had to be truncated (0 when it fitted as it was).

    PostHog's AI route refuses events over 8 MB, and one refused event fails
    its whole request.  The largest properties (prompt and response content,
    as a rule) are cut first, each replaced by the start of its JSON text and
    a marker saying how much was cut, so the event still arrives and shows.
    """
    encoded = encode_event(event)
    if len(encoded) <= max_bytes:
        return encoded, 0
    properties = dict(event.get("properties") or {})
    sizes = sorted(
        ((len(encode_event(value)), key) for key, value in properties.items()), reverse=True
    )
    excess = len(encoded) - max_bytes
    truncated = 0
    for size, key in sizes:
        if excess <= 0:
            break
        text = (
            properties[key] if isinstance(properties[key], str) else encode_event(properties[key])
        )
        keep = max(0, len(text) - excess - len(TRUNCATION_MARKER) - 32)
        properties[key] = text[:keep] + TRUNCATION_MARKER.format(cut=len(text) - keep)
        excess -= size - len(encode_event(properties[key]))
        truncated += 1
    return encode_event({**event, "properties": properties}), truncated
