"""The OpenTelemetry set-up the OTel tests share: an SDK tracer provider whose only
processor is a ``LoggingSpanProcessor`` on a given logger (the global provider is
never touched)."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from posthog_logging.otel import LoggingSpanProcessor


class Otel:
    """A tracer provider with a LoggingSpanProcessor on a dedicated logger."""

    def __init__(
        self, logger: logging.Logger, resource: Resource | None = None, **options: Any
    ) -> None:
        self.provider = TracerProvider(resource=resource or Resource.create({}))
        self.processor = LoggingSpanProcessor(logger=logger, **options)
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer("tests")
