"""The OpenTelemetry set-up the OTel tests share: an SDK tracer provider whose only
processor is a ``LoggingSpanProcessor`` on a given logger (the global provider is
never touched)."""

from __future__ import annotations

import logging
from collections.abc import Callable
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


def instrument_openllmetry(provider: TracerProvider) -> Callable[[], None]:
    """OpenLLMetry's ``opentelemetry-instrumentation-openai`` on ``provider``; returns
    what undoes it.  Its own ``uninstrument()`` leaves the chat ``create`` / ``parse``
    wrapped (0.62), so the next instrumentation would run two wrappers, each recording
    the stream's reply: the wrappers left are removed here."""
    from openai.resources.chat import completions  # noqa: PLC0415
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # noqa: PLC0415

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def uninstrument() -> None:
        instrumentor.uninstrument()
        for cls in (completions.Completions, completions.AsyncCompletions):
            for name, attribute in list(vars(cls).items()):
                original = attribute
                while _is_openllmetry_wrapper(original):
                    original = original.__wrapped__
                if original is not attribute:
                    setattr(cls, name, original)

    return uninstrument


def _is_openllmetry_wrapper(attribute: Any) -> bool:
    wrapper = getattr(attribute, "_self_wrapper", None)
    return getattr(wrapper, "__module__", "").startswith("opentelemetry.instrumentation.openai.")
