"""Send LLM / agent traces to PostHog LLM analytics through the standard ``logging`` module."""

from __future__ import annotations

from ._version import __version__
from .contract import SpanEvent, SpanType
from .formatter import SpanJsonFormatter
from .handler import PosthogLogHandler
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
    span,
    traced,
    traceparent,
)

__all__ = [
    "ContextThreadPoolExecutor",
    "Embedding",
    "Generation",
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
    "span",
    "traced",
    "traceparent",
]
