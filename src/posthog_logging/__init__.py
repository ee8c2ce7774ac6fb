"""Send LLM / agent traces to PostHog LLM analytics through the standard ``logging`` module."""

from __future__ import annotations

from ._version import __version__
from .contract import SpanEvent, SpanType
from .formatter import SpanJsonFormatter
from .handler import PosthogLogHandler
from .posthog_client import LoggingPosthogClient, posthog_client
from .tracing import Generation, Span, current_span, feedback, generation, span, traced

__all__ = [
    "Generation",
    "LoggingPosthogClient",
    "PosthogLogHandler",
    "Span",
    "SpanEvent",
    "SpanJsonFormatter",
    "SpanType",
    "__version__",
    "current_span",
    "feedback",
    "generation",
    "posthog_client",
    "span",
    "traced",
]
