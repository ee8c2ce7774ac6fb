"""Send LLM / agent traces to PostHog LLM analytics through the standard ``logging`` module."""

from __future__ import annotations

from ._version import __version__
from .contract import SpanEvent, SpanType
from .handler import PosthogLogHandler

__all__ = ["PosthogLogHandler", "SpanEvent", "SpanType", "__version__"]
