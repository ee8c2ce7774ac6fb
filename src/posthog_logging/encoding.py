"""Events as JSON text: encoded once, as soon as they are built, and cut to fit.

Events are encoded on the listener thread (or on whichever thread does its
work: the closing thread aborting the open spans, the caller's when no
listener could start, replay's): the encoded size is what the memory bound and
PostHog's size limits are about, and a request body is then just the encoded
events joined (:func:`.transport.encode_body`).  The journal stores them as
they are, one per line.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import json.encoder
import re
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

try:  # the [fast] extra
    import orjson
except ImportError:  # pragma: no cover - the test extra installs it
    orjson = None  # type: ignore[assignment]

#: An event as JSON text, ready to be joined into a request body.
EncodedEvent = str
#: PostHog's AI ingestion path accepts events up to 8 MB; keep clear of it.
MAX_EVENT_BYTES = 7_900_000
#: Appended to a property cut to make its event fit.
TRUNCATION_MARKER = "…[truncated {cut} chars by posthog-logging]"

#: What ``json.dumps(event, separators=(",", ":"), default=str)`` does, built
#: once: ``dumps`` builds an encoder and its C half for every call, a quarter of
#: the time of encoding a 1.6 KB event.  No cycle check (``markers=None``):
#: events are JSON-safe, made so by the mapping; anything it raises sends the
#: event through ``json.dumps`` for the same result or error as before.
#: The constructor is private to ``json``: should a release change it, events go
#: through ``json.dumps`` as before rather than the import failing.
_C_ENCODER: Callable[[Any, int], Iterator[str]] | None = None
with contextlib.suppress(TypeError):  # no C module (None), or another signature
    _C_ENCODER = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, str, encode_basestring_ascii, None, ":", ",", False, False, True
    )
#: orjson writes floats with 1e-9 <= |x| < 1e-4 differently from Python
#: (``1e-9`` and ``0.00001`` for ``1e-09`` and ``1e-05``): an event whose text
#: shows either form (in a number, or by chance in a string) is encoded by
#: ``json`` instead, so the text stays the same whichever encoder made it.
#: Two searches for a literal: one regular expression with both alternatives
#: scans the text a byte at a time, five times slower than orjson itself.
_FIXED_SMALL_FLOAT = b".0000"
_SHORT_NEGATIVE_EXPONENT = re.compile(rb"e-\d(?:[,}\]]|$)")
#: The codec error handler that writes characters beyond ASCII as ``json`` does.
_JSON_ESCAPES = "posthog_logging.json_escapes"
#: Objects orjson would write its own way go to ``default=str``, as with ``json``.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS if orjson else 0
)


def encode_event(event: Any) -> EncodedEvent:
    """JSON text of one event (or of one property's value), all ASCII.

    Events are JSON-safe already (the mapping made them so), which lets a C
    encoder do all the work; the ``posthog`` client's own encoder walks every
    value in Python first, which is slow on large prompts.  With orjson
    installed (the ``[fast]`` extra) it encodes most events, about three times faster,
    to exactly the text ``json`` would give: :func:`encode_with_orjson`.  ASCII
    escapes keep even lone surrogates from user strings valid JSON.
    """
    if _ORJSON_WRITES_FLOATS_AS_PYTHON:
        encoded = encode_with_orjson(event)
        if encoded is not None:
            return encoded
    return encode_with_json(event)


def encode_with_json(event: Any) -> EncodedEvent:
    """``json.dumps(event, separators=(",", ":"), default=str)``, faster."""
    if _C_ENCODER is not None:
        try:
            return "".join(_C_ENCODER(event, 0))
        except Exception:  # json.dumps gives the same result, or the same error
            pass
    return json.dumps(event, separators=(",", ":"), default=str)


def encode_with_orjson(event: Any) -> EncodedEvent | None:
    """The text :func:`encode_with_json` gives, made by orjson; None where orjson
    cannot make it (integers over 64 bits, lone surrogates, nesting over 254
    levels, keys that are not strings, the float forms it writes differently).

    orjson writes non-ASCII characters (and DEL) as they are where ``json``
    writes ``\\u`` escapes: they are escaped afterwards, each run of them by
    ``json``'s own function called from the ASCII codec (they can only be
    inside strings, so no other byte changes).  Objects that are not JSON types go
    through ``str``, as with ``json``'s ``default=str``.
    """
    assert orjson is not None
    try:
        raw = orjson.dumps(event, default=str, option=_ORJSON_OPTIONS)
    except Exception:  # orjson.JSONEncodeError, and whatever str() raises in default=
        return None
    if _FIXED_SMALL_FLOAT in raw or _SHORT_NEGATIVE_EXPONENT.search(raw):
        return None
    if not raw.isascii():
        raw = raw.decode("utf-8").encode("ascii", _JSON_ESCAPES)
    if b"\x7f" in raw:  # ASCII, but json escapes DEL too
        raw = raw.replace(b"\x7f", b"\\u007f")
    return raw.decode("ascii")


def _json_escapes(error: UnicodeError) -> tuple[str, int]:
    """Each run of characters the ASCII codec cannot write, as ``json`` writes it."""
    assert isinstance(error, UnicodeEncodeError)
    return encode_basestring_ascii(error.object[error.start : error.end])[1:-1], error.end


codecs.register_error(_JSON_ESCAPES, _json_escapes)


#: Floats orjson must write as Python does for it to be used at all: the forms
#: above are what 3.12 and 3.13 write differently; releases before 3.12 write
#: ``1e16`` for ``1e+16`` and fail this probe, and then only ``json`` is used.
_FLOAT_PROBES = (0.1, -0.0, 1.0, 1e15, 1e16, 1.5e16, 1e22, 1.7976931348623157e308, 1e-4, 1e-10)
_ORJSON_WRITES_FLOATS_AS_PYTHON = orjson is not None and all(
    encode_with_orjson(probe) == repr(probe) for probe in _FLOAT_PROBES
)


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
