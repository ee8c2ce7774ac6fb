"""OpenLLMetry (traceloop's ``opentelemetry-instrumentation-openai``) through
LoggingSpanProcessor: the real instrumentation and OpenAI SDK, the model answered
in-process (httpx ``MockTransport``), through a ``PosthogLogHandler`` to the dev server."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .otel_helpers import Otel, instrument_openllmetry
from .test_otel_openai import by_event, mocked_openai, streamed_reply


@pytest.fixture
def instrumented(
    capture_server: CaptureServer,
) -> Iterator[tuple[Otel, openai.OpenAI, PosthogLogHandler]]:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.openllmetry", handler))
    uninstrument = instrument_openllmetry(otel.provider)
    client = mocked_openai()
    yield otel, client, handler
    uninstrument()
    handler.close()


def test_plain_and_streamed_calls_are_generations(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, handler = instrumented
    with otel.tracer.start_as_current_span("agent"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather?"}],
            temperature=0.2,
        )
        assert streamed_reply(client) == "Hi there"
    handler.flush()
    plain, streamed = (e["properties"] for e in by_event(capture_server)["$ai_generation"])
    assert (plain["$ai_model"], plain["$ai_provider"]) == ("gpt-4o-mini-2024-07-18", "openai")
    assert (plain["$ai_input_tokens"], plain["$ai_output_tokens"]) == (21, 9)
    assert plain["$ai_temperature"] == 0.2
    assert plain["$ai_input"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}
    ]
    assert plain["$ai_output_choices"][0]["content"][0]["text"] == "Sunny."
    assert plain["$ai_stream"] is False
    assert streamed["$ai_stream"] is True
    assert streamed["$ai_output_choices"][0]["content"][0]["text"] == "Hi there"
