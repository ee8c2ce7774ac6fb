"""Which OTel span attributes may be passed through as event properties.

Instrumentations put prompts and replies in attributes of their own choosing,
in every convention this package reads.  Two rules keep them out of the
passthrough (``$ai_span`` properties):

* **Content attributes are never passed through**, privacy mode or not: the
  names below are read into the span's ``input``/``output`` (which the
  handler's ``privacy_mode`` removes) or nowhere at all.
* **Under privacy mode, an attribute the library does not know is sent only
  when it cannot hold text**: numbers and booleans (and lists of them) pass,
  and so do the strings of :data:`NON_CONTENT_TEXT` (ids, model names, span
  kinds, HTTP methods...).  Every other string is withheld.  An allow-list,
  not a size limit: a short prompt ("yes", a name, a password) is content too,
  and the next instrumentation will name its attributes differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Attributes that hold prompts, replies, tool arguments/results or raw
#: requests/responses, by convention.  Names ending in ``.`` are prefixes.
CONTENT_ATTRIBUTES = (
    # OpenTelemetry GenAI, every generation (spec 1.26+, 1.36+; OpenLLMetry's flattening).
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.embeddings.",
    # OpenLLMetry / traceloop (and its older ``llm.prompts`` / ``llm.completions``).
    "traceloop.entity.input",
    "traceloop.entity.output",
    "llm.request.functions.",
    "llm.prompts",
    "llm.completions",
    # OpenInference.
    "input.value",
    "output.value",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.prompt_template.",
    "llm.tools.",
    "llm.invocation_parameters",
    "embedding.embeddings.",
    "embedding.invocation_parameters",
    "retrieval.documents.",
    "reranker.",
    "message.",
    "tool.parameters",
    "tool_call.",
    "metadata",
    "tag.tags",
    # Logfire (and Pydantic AI through it).
    "prompt",
    "request_data",
    "response_data",
    "all_messages_events",
    "events",
    "final_result",
    "pydantic_ai.all_messages",
    # Vercel AI SDK.
    "ai.prompt",
    "ai.prompt.",
    "ai.response.text",
    "ai.response.toolCalls",
    "ai.response.object",
    "ai.response.reasoning",
    "ai.result.",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "ai.value",
    "ai.values",
    "ai.embedding",
    "ai.embeddings",
    "ai.schema",
)


def _names_and_prefixes(listed: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """A listing split into its exact names and its prefixes (the names ending in ``.``)."""
    return (
        frozenset(name for name in listed if not name.endswith(".")),
        tuple(name for name in listed if name.endswith(".")),
    )


_CONTENT_NAMES, _CONTENT_PREFIXES = _names_and_prefixes(CONTENT_ATTRIBUTES)

#: String attributes known not to hold content: what privacy mode still passes.
#: Names ending in ``.`` are prefixes.
NON_CONTENT_TEXT = (
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.agent.id",
    "gen_ai.agent.name",
    "gen_ai.conversation.id",
    "gen_ai.output.type",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.type",
    "gen_ai.openai.api_base",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.type",
    "llm.finish_reason",
    "embedding.model_name",
    "openinference.span.kind",
    "input.mime_type",
    "output.mime_type",
    "tool.name",
    "session.id",
    "user.id",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "traceloop.workflow.name",
    "ai.operationId",
    "ai.model.id",
    "ai.model.provider",
    "ai.response.id",
    "ai.response.model",
    "ai.response.finishReason",
    "ai.telemetry.functionId",
    "ai.toolCall.id",
    "ai.toolCall.name",
    "logfire.span_type",
    "logfire.msg_template",
    "logfire.tags",
    "error.type",
    "http.method",
    "http.request.method",
    "http.route",
    "server.address",
    "code.",
    "service.",
    "thread.",
    "posthog.",
)
_TEXT_NAMES, _TEXT_PREFIXES = _names_and_prefixes(NON_CONTENT_TEXT)


def is_content(key: str) -> bool:
    """Whether an attribute is known to carry content in a convention this package reads."""
    return key in _CONTENT_NAMES or key.startswith(_CONTENT_PREFIXES)


def passthrough_attributes(attributes: Mapping[str, Any], *, private: bool) -> dict[str, Any]:
    """The attributes an ``$ai_span`` may carry: never content; under privacy mode
    (``private``) only values that cannot hold text and the listed strings."""
    return {
        key: value
        for key, value in attributes.items()
        if not is_content(key) and (not private or _shareable(key, value))
    }


def _shareable(key: str, value: Any) -> bool:
    if key in _TEXT_NAMES or key.startswith(_TEXT_PREFIXES):
        return True
    values = value if isinstance(value, (list, tuple)) else (value,)
    return all(isinstance(item, (bool, int, float)) for item in values)
