"""Trace-consistent sampling: the rule PostHog's SDKs share.

posthog-python#965 and posthog-js#4997 define it: an ``$ai_*`` event that
carries ``$ai_trace_id`` is kept when the FNV-1a 32-bit hash of the trace id's
UTF-8 bytes, divided by 2**32, is below the rate, and a kept event carries the
rate as ``$ai_trace_sample_rate`` so PostHog can scale totals back up.  The
decision depends on the trace id alone, so every event of a trace, in every
process and every service of a mixed Python/Node stack, makes the same one,
and a sampled trace arrives whole.  Events without a trace id are kept.

It runs on the listener thread, after mapping and before ``mask`` and
``before_send`` (so those hooks see only kept events), and costs the logging
caller nothing.
"""

from __future__ import annotations

import math
from typing import Any

from .values import id_text

#: FNV-1a 32-bit parameters (the offset basis and prime of the FNV spec).
FNV32_OFFSET_BASIS = 0x811C9DC5
FNV32_PRIME = 0x01000193
#: The property that tells PostHog the rate a kept event was sampled at.
SAMPLE_RATE_PROPERTY = "$ai_trace_sample_rate"
#: Event names the rule applies to (PostHog's LLM-analytics events).
AI_EVENT_PREFIX = "$ai_"


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    value = FNV32_OFFSET_BASIS
    for byte in data:
        value = ((value ^ byte) * FNV32_PRIME) & 0xFFFFFFFF
    return value


def utf8(text: str) -> bytes:
    """UTF-8 bytes as JavaScript's ``TextEncoder`` writes them.

    A lone surrogate (possible in a Python ``str``, and in a JS string) becomes
    U+FFFD there; Python's encoder would raise instead.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        repaired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return repaired.encode("utf-8")


def check_sample_rate(value: Any, name: str = "sample_rate") -> float:
    """``value`` as a rate in (0, 1]; a clear TypeError or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1], not {value!r}")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1] (1 keeps every trace), got {value!r}")
    return float(value)


def sampler_for(rate: float | None) -> TraceSampler | None:
    """The sampler for a configured rate; None (no sampling at all) when unset or 1."""
    if rate is None or check_sample_rate(rate) == 1.0:
        return None
    return TraceSampler(rate)


class TraceSampler:
    """Keeps the events of the traces whose hash falls below ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = check_sample_rate(rate)
        # hash / 2**32 < rate  <=>  hash < ceil(rate * 2**32) for an integer hash, and
        # exactly so: a power of two scales a double without rounding.
        self._threshold = math.ceil(self.rate * 2**32)

    def __repr__(self) -> str:
        return f"<TraceSampler rate={self.rate}>"

    def keep(self, event: dict[str, Any]) -> bool:
        """Whether to send ``event``; a kept sampled event gets ``$ai_trace_sample_rate``."""
        name = event.get("event")
        properties = event.get("properties")
        if not (isinstance(name, str) and name.startswith(AI_EVENT_PREFIX)):
            return True
        if not isinstance(properties, dict):
            return True
        trace_id = properties.get("$ai_trace_id")
        if trace_id is None or trace_id == "":
            return True  # no trace to be consistent with: kept, and not marked sampled
        text = trace_id if type(trace_id) is str else id_text(trace_id)
        if text is None:
            return True
        if fnv1a_32(utf8(text)) >= self._threshold:
            return False
        properties[SAMPLE_RATE_PROPERTY] = self.rate
        return True
