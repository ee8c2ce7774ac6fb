"""OpenTelemetry GenAI spans through ``logging`` (install ``posthog-logging[otel]``).

::

    from opentelemetry.sdk.trace import TracerProvider
    from posthog_logging.otel import LoggingSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(LoggingSpanProcessor())

Every finished GenAI span (``gen_ai.*``, ``llm.*``, ``traceloop.*``, ``ai.*``)
is logged as a span record on ``"posthog_logging.spans"``, where a
``PosthogLogHandler`` (or a ``SpanJsonFormatter``) picks it up.
"""

from __future__ import annotations

from .processor import LoggingSpanProcessor

__all__ = ["LoggingSpanProcessor"]
