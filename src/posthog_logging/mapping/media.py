"""Part 2 (s): inline base64 media in prompts and outputs becomes a short placeholder.

One screenshot in a message is hundreds of KB in every event that carries it,
and an event over PostHog's size limit gets its content cut.  The ``posthog.ai``
wrappers replace such media with ``[base64 image redacted]``
(posthog-python ``posthog/ai/sanitization.py``); this module finds the same
things, structurally, and says a little more: the media type and its decoded
size, e.g. ``[base64 image/png redacted, 48213 bytes]``.

What counts as inline media: a ``data:<type>;base64,`` URL anywhere (OpenAI
``image_url``, the AI SDK's ``image`` parts), and a long base64 string under a
key that holds media (Anthropic ``{"source": {"type": "base64", "data"}}``,
OpenAI ``input_audio.data``, Gemini ``inline_data.data``).  Values are walked
after ``json_safe``, so only dicts, lists and strings need a look.
"""

from __future__ import annotations

import re
from typing import Any

from ..values import JsonValue

_DATA_URL = re.compile(r"data:([^;,]+);base64,")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
#: Shorter strings under a media key are left alone: they are ids or text, not media.
_MIN_BASE64_LENGTH = 200
#: Keys whose string value is media when it is long base64 (as the wrappers judge it).
_MEDIA_KEYS = frozenset({"data", "audio", "audio_data", "audioData", "image", "inline_data"})
#: Keys of a sibling naming the media's type.
_TYPE_HINTS = ("media_type", "mime_type", "mimeType", "mediaType", "format")
_AUDIO_FORMATS = frozenset({"wav", "mp3", "pcm16", "pcm", "flac", "opus", "aac", "ogg", "m4a"})


def redact_media(value: JsonValue) -> JsonValue:
    """``value`` with every inline base64 medium replaced by its placeholder.

    Most content holds none: a scan that allocates nothing finds that out, and
    only content that may hold media is copied with the placeholders in.
    """
    kind = type(value)
    if kind is str:
        return _redacted(value, None, None)
    if (kind is dict or kind is list) and _may_hold_media(value, None):
        return _walk(value, None, None)
    return value


def _may_hold_media(node: JsonValue, key: str | None) -> bool:
    """Whether a dict or list (under ``key``) has a string :func:`_redacted` may
    replace.  It runs on the content of every span: one call per container, and its
    strings are tested in the loop, without a call each."""
    if type(node) is dict:
        for name, item in node.items():
            kind = type(item)
            if kind is str:
                if item.startswith("data:") or (
                    name in _MEDIA_KEYS and len(item) >= _MIN_BASE64_LENGTH
                ):
                    return True
            elif (kind is dict or kind is list) and _may_hold_media(item, name):
                return True
        return False
    for item in node:
        kind = type(item)
        if kind is str:
            if item.startswith("data:") or (key in _MEDIA_KEYS and len(item) >= _MIN_BASE64_LENGTH):
                return True
        elif (kind is dict or kind is list) and _may_hold_media(item, key):
            return True
    return False


def _walk(node: JsonValue, key: str | None, parent: dict[str, Any] | None) -> JsonValue:
    kind = type(node)
    if kind is str:
        return _redacted(node, key, parent)
    if kind is dict:
        return {name: _walk(item, name, node) for name, item in node.items()}
    if kind is list:
        return [_walk(item, key, parent) for item in node]
    return node


def _redacted(text: str, key: str | None, parent: dict[str, Any] | None) -> str:
    if text.startswith("data:"):
        match = _DATA_URL.match(text)
        if match is not None:
            return placeholder(match.group(1), len(text) - match.end(), text[-2:])
    if (
        key in _MEDIA_KEYS
        and len(text) >= _MIN_BASE64_LENGTH
        and _BASE64_BODY.fullmatch(text) is not None
    ):
        return placeholder(_media_type(parent), len(text), text[-2:])
    return text


def _media_type(parent: dict[str, Any] | None) -> str:
    """The media type a sibling key names (``audio/wav`` for OpenAI's ``format: wav``)."""
    if parent is None:
        return "media"
    for key in _TYPE_HINTS:
        hint = parent.get(key)
        if isinstance(hint, str) and hint:
            if "/" in hint:
                return hint
            return f"audio/{hint}" if hint.lower() in _AUDIO_FORMATS else f"image/{hint}"
    kind = parent.get("type")
    return kind if isinstance(kind, str) and kind in ("image", "audio", "video") else "media"


def placeholder(media_type: str, encoded_length: int, tail: str) -> str:
    """What replaces a medium: its type and decoded size (``tail``: its last two characters)."""
    size = encoded_length * 3 // 4 - tail.count("=")
    return f"[base64 {media_type} redacted, {size} bytes]"
