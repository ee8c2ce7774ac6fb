"""The record contract shared by everything that emits or consumes span records.

A span travels through ``logging`` as ``extra={"span": span, "span_event": ...}``
and feedback as ``extra={"feedback": feedback}`` (see ``docs/api.md``).
This module names those attributes and the values they may take, so emitters
(the tracing API, user code) and the handler agree without importing each other.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

#: ``LogRecord`` attribute that carries a span (a mapping or a :class:`SupportsSpanDict`).
SPAN_ATTR = "span"
#: ``LogRecord`` attribute that says which lifecycle event the span record is.
SPAN_EVENT_ATTR = "span_event"
#: ``LogRecord`` attribute that carries a Mastra feedback mapping.
FEEDBACK_ATTR = "feedback"
#: ``LogRecord`` attribute that carries a ready PostHog AI event (what ``posthog.ai`` captures).
POSTHOG_EVENT_ATTR = "posthog_event"

#: Properties that carry user content: prompts and responses, span input and output
#: (tool arguments and results among them), the Responses API's instructions,
#: ``$ai_output`` (the older output property PostHog still reads as content), error
#: messages (they often quote the input) and feedback comments.  ``mask`` is called
#: with each; privacy mode removes the first six (docs/mapping-rules.md §1.14).
CONTENT_PROPERTIES = (
    "$ai_input",
    "$ai_output_choices",
    "$ai_input_state",
    "$ai_output_state",
    "$ai_instructions",
    "$ai_output",
    "$ai_error",
    "error_message",
    "$ai_feedback_text",
)
#: What privacy mode removes: the content, not the errors nor the feedback text.
PRIVATE_CONTENT_PROPERTIES = CONTENT_PROPERTIES[:6]

#: Logger the tracing API writes to unless told otherwise.
DEFAULT_SPAN_LOGGER = "posthog_logging.spans"
#: Logger for the library's own diagnostics; the handler never consumes it.
DIAGNOSTICS_LOGGER = "posthog_logging.diagnostics"


class SpanEvent(str, enum.Enum):
    """Lifecycle event of a span record (Mastra's ``TracingEventType``)."""

    STARTED = "span_started"
    UPDATED = "span_updated"
    ENDED = "span_ended"


class SpanType(str, enum.Enum):
    """Mastra's span types (``SpanType`` in ``@mastra/core``), plus ``model_embedding``.

    ``model_embedding`` is this library's: default mode sends it as
    ``$ai_embedding``; compat mode treats it like any type Mastra does not map.
    """

    AGENT_RUN = "agent_run"
    GENERIC = "generic"
    MODEL_GENERATION = "model_generation"
    MODEL_EMBEDDING = "model_embedding"
    MODEL_STEP = "model_step"
    MODEL_CHUNK = "model_chunk"
    MODEL_INFERENCE = "model_inference"
    MCP_TOOL_CALL = "mcp_tool_call"
    PROCESSOR_RUN = "processor_run"
    TOOL_CALL = "tool_call"
    WORKFLOW_RUN = "workflow_run"
    WORKFLOW_STEP = "workflow_step"
    WORKFLOW_CONDITIONAL = "workflow_conditional"
    WORKFLOW_CONDITIONAL_EVAL = "workflow_conditional_eval"
    WORKFLOW_PARALLEL = "workflow_parallel"
    WORKFLOW_LOOP = "workflow_loop"
    WORKFLOW_SLEEP = "workflow_sleep"
    WORKFLOW_WAIT_EVENT = "workflow_wait_event"


@runtime_checkable
class SupportsSpanDict(Protocol):
    """An object that can render itself as a Mastra exported-span mapping.

    The tracing API's span objects implement this; the handler calls it on the
    caller's thread, so it must be cheap (a shallow snapshot, no serialisation).
    """

    def to_span_dict(self) -> Mapping[str, Any]: ...


class ActiveSpan(Protocol):
    """What the handler needs of the span code is running in (``capture_logs``)."""

    trace_id: str
    span_id: str

    def event_span_dict(
        self, name: str, output: Any, attributes: Mapping[str, Any]
    ) -> Mapping[str, Any]: ...


#: The span the running code is inside, set by the tracing API.  It lives here,
#: not in the tracing module, so the handler can read it without importing the API.
CURRENT_SPAN: contextvars.ContextVar[ActiveSpan | None] = contextvars.ContextVar(
    "posthog_logging_current_span", default=None
)
