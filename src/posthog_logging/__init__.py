"""Send LLM / agent traces to PostHog LLM analytics through the standard ``logging`` module."""

from __future__ import annotations

from ._version import __version__
from .contract import SpanEvent, SpanType
from .formatter import SpanJsonFormatter
from .handler import PosthogLogHandler
from .posthog_client import LoggingPosthogClient, posthog_client
from .tracing import (
    ContextThreadPoolExecutor,
    Embedding,
    Generation,
    Span,
    carry_context,
    current_span,
    embedding,
    feedback,
    generation,
    metric,
    span,
    traced,
    traceparent,
)

__all__ = [
    "ContextThreadPoolExecutor",
    "Embedding",
    "Generation",
    "LoggingPosthogClient",
    "PosthogLogHandler",
    "Span",
    "SpanEvent",
    "SpanJsonFormatter",
    "SpanType",
    "__version__",
    "carry_context",
    "current_span",
    "embedding",
    "feedback",
    "generation",
    "metric",
    "posthog_client",
    "span",
    "traced",
    "traceparent",
]
