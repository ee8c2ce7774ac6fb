"""Logfire's spans (``logfire.configure(additional_span_processors=[...])``).

Logfire names a span by its message *template* (``Chat Completion with
{request_data[model]!r}``) and keeps the rendered message in ``logfire.msg``.
A streamed OpenAI or Anthropic call makes two spans: the request span, which
ends when the stream is returned and so has neither reply nor usage, and a
``streaming response from ... took ...s`` log written when the stream is
consumed, which has the request's attributes plus the reply, the usage and the
``duration``.  The log is the generation; the request span adds nothing and
is not sent (see ``llm_providers/llm_provider.py`` in ``logfire``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Status, StatusCode

from ..values import is_number

MESSAGE = "logfire.msg"
TEMPLATE = "logfire.msg_template"
#: Logfire's suffix for the streamed-response log; the name drops it (one name per call).
_STREAM_DURATION = " took {duration:.2f}s"
#: Operations whose streamed calls Logfire reports as a separate log.
_STREAMED_OPERATIONS = frozenset({"chat", "text_completion"})
#: What a finished (non-streamed) request span has and a streamed one lacks.
_RESPONSE = ("gen_ai.output.messages", "response_data", "gen_ai.usage.input_tokens")


def span_name(name: str, attributes: Mapping[str, Any], *, private: bool) -> str:
    """The rendered message of a Logfire span; its template under privacy mode
    (the rendered values may be content), and any other span's own name."""
    message = attributes.get(MESSAGE)
    template = attributes.get(TEMPLATE)
    if private or not isinstance(message, str) or not message:
        return name
    if isinstance(template, str) and template.endswith(_STREAM_DURATION):
        message = message.rpartition(" took ")[0] or message
    return message


def is_streamed_request(attributes: Mapping[str, Any], status: Status) -> bool:
    """A Logfire request span whose reply arrives as a separate streamed-response log."""
    return (
        TEMPLATE in attributes
        and attributes.get("logfire.span_type") == "span"
        and attributes.get("gen_ai.operation.name") in _STREAMED_OPERATIONS
        and status.status_code is not StatusCode.ERROR
        and not any(key in attributes for key in _RESPONSE)
    )


def log_duration(attributes: Mapping[str, Any]) -> int | None:
    """A Logfire log's ``duration`` in nanoseconds (a log is a span of no length)."""
    duration = attributes.get("duration")
    if attributes.get("logfire.span_type") != "log" or not is_number(duration) or duration < 0:
        return None
    return int(duration * 1_000_000_000)
