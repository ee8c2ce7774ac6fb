"""OpenTelemetry GenAI spans through ``logging`` (install ``posthog-logging[otel]``).

::

    from opentelemetry.sdk.trace import TracerProvider
    from posthog_logging.otel import LoggingSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(LoggingSpanProcessor())

Every finished GenAI span (``gen_ai.*``, ``llm.*``, ``traceloop.*``, ``ai.*``,
OpenInference's ``openinference.span.kind``) is logged as a span record on
``"posthog_logging.spans"``, where a ``PosthogLogHandler`` (or a
``SpanJsonFormatter``) picks it up.  With Logfire, which owns its tracer provider:
``logfire.configure(additional_span_processors=[LoggingSpanProcessor()])``.
docs/instrumentations.md lists what is mapped and what privacy mode holds back.
"""

from __future__ import annotations

from .processor import LoggingSpanProcessor

__all__ = ["LoggingSpanProcessor"]
