"""What PostHog's ingestion derives from an LLM-analytics event, written out as test oracles.

PostHog fills several LLM-analytics screens from properties it computes at
ingestion, in PostHog/posthog ``nodejs/src/ingestion/pipelines/ai/``
(``process-ai-event.ts`` runs them in this order: error normalisation, costs,
model parameters, tool calls).  An event is only as good as what that code can
read from it, so the tests compare events through these functions, not by their
raw shape.  Each function names the file it follows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .helpers import posthog_token_buckets

#: ``tools/extract-tool-calls.ts``: caps on names and tools per event.
MAX_TOOL_NAME_LENGTH = 200
MAX_TOOLS_PER_EVENT = 100
#: ``tools/index.ts``: a string output is parsed only when it holds one of these.
TOOL_CALL_INDICATORS = ("tool_call", "tool_use", "function_call", '"function"', "tool-call")
_PYTHON_REPR_TOOL_CALL = re.compile(r"ResponseFunctionToolCall\([^)]*name='([^']+)'")


def _sanitized(name: str) -> str | None:
    """``sanitizeToolName``: trimmed, commas replaced, at most 200 characters."""
    name = name.strip()
    if not name:
        return None
    return name.replace(",", "_")[:MAX_TOOL_NAME_LENGTH]


def _push(names: list[str], raw: str) -> None:
    clean = _sanitized(raw)
    if clean is not None:
        names.append(clean)


def _from_tool_calls(calls: list[Any], names: list[str]) -> None:
    """``extractFromToolCalls``: OpenAI ``tool_calls[].function.name``."""
    for call in calls:
        if len(names) >= MAX_TOOLS_PER_EVENT:
            return
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            _push(names, name)


def _from_parts(parts: list[Any], names: list[str]) -> None:
    """``extractFromMessageParts``: ``tool_call`` / ``tool_use`` with ``name``, and
    ``function`` / ``tool-call`` with ``function.name``."""
    for part in parts:
        if len(names) >= MAX_TOOLS_PER_EVENT:
            return
        if not isinstance(part, dict):
            continue
        kind, name = part.get("type"), part.get("name")
        function = part.get("function")
        if kind in ("tool_call", "tool_use") and isinstance(name, str) and name:
            _push(names, name)
        elif (
            kind in ("function", "tool-call")
            and isinstance(function, dict)
            and isinstance(function.get("name"), str)
            and function["name"]
        ):
            _push(names, function["name"])


def extract_tool_call_names(output_choices: Any, raw: str | None = None) -> list[str]:
    """``extractToolCallNames`` (``tools/extract-tool-calls.ts``), in call order."""
    if isinstance(output_choices, dict) and isinstance(output_choices.get("choices"), list):
        output_choices = output_choices["choices"]
    if not isinstance(output_choices, list):
        return _PYTHON_REPR_TOOL_CALL.findall(raw or "")[:MAX_TOOLS_PER_EVENT]
    names: list[str] = []
    for choice in output_choices:
        if len(names) >= MAX_TOOLS_PER_EVENT:
            break
        if not isinstance(choice, dict):
            continue
        name = choice.get("name")
        if choice.get("type") == "function_call" and isinstance(name, str) and name:
            _push(names, name)
            continue
        message = choice.get("message")
        holder = message if isinstance(message, dict) else choice
        if isinstance(holder.get("tool_calls"), list):
            _from_tool_calls(holder["tool_calls"], names)
        for key in ("content", "parts"):
            if isinstance(holder.get(key), list):
                _from_parts(holder[key], names)
    if not names and raw:
        return _PYTHON_REPR_TOOL_CALL.findall(raw)[:MAX_TOOLS_PER_EVENT]
    return names


def tools_called(event_name: str, props: Mapping[str, Any]) -> tuple[list[str], int] | None:
    """``processAiToolCallExtraction`` (``tools/index.ts``): ``$ai_tools_called`` split
    back into names, and ``$ai_tool_call_count``; None when nothing is derived.
    Only ``$ai_generation`` events; a value the caller sent wins."""
    if event_name != "$ai_generation":
        return None
    given = props.get("$ai_tools_called")
    if given is not None:
        names = [name for name in str(given).split(",") if name.strip()]
        return names, int(props.get("$ai_tool_call_count") or len(names))
    output = props.get("$ai_output_choices")
    if output is None:
        return None
    raw = output if isinstance(output, str) else None
    if isinstance(output, str):
        if not any(indicator in output for indicator in TOOL_CALL_INDICATORS):
            return None
        try:
            output = json.loads(output)
        except ValueError:
            output = None
    names = extract_tool_call_names(output, raw)
    return (names, len(names)) if names else None


def core_model_params(props: Mapping[str, Any]) -> dict[str, Any]:
    """``extractCoreModelParams`` (``costs/index.ts``): ``$ai_temperature``,
    ``$ai_stream`` and ``$ai_max_tokens`` after ``$ai_model_parameters`` is read."""
    result = {key: props.get(key) for key in ("$ai_temperature", "$ai_stream", "$ai_max_tokens")}
    params = props.get("$ai_model_parameters")
    if isinstance(params, dict) and params:
        if "temperature" in params:
            result["$ai_temperature"] = params["temperature"]
        if "stream" in params:
            result["$ai_stream"] = params["stream"]
        if "max_tokens" in params:
            result["$ai_max_tokens"] = params["max_tokens"]
        elif "max_completion_tokens" in params:
            result["$ai_max_tokens"] = params["max_completion_tokens"]
    return result


def error_state(props: Mapping[str, Any]) -> tuple[bool, str | None]:
    """``processAiErrorNormalization`` (``errors/index.ts``) reads ``$ai_is_error`` (true
    or "true") and the ``$ai_error`` text it normalises for the Errors tab."""
    is_error = props.get("$ai_is_error") in (True, "true")
    error = props.get("$ai_error")
    if not is_error:
        return False, None
    return True, error if isinstance(error, str) or error is None else json.dumps(error)


def priced(props: Mapping[str, Any]) -> dict[str, Any]:
    """What ``costs/`` prices: the input token buckets of ``input-costs.ts``
    (:func:`~tests.helpers.posthog_token_buckets`), output and reasoning tokens
    (``output-costs.ts``) and web searches (``web-search-costs.ts``, only when sent)."""
    return {
        "input": posthog_token_buckets(props),
        "output": int(props.get("$ai_output_tokens") or 0),
        "reasoning": int(props.get("$ai_reasoning_tokens") or 0),
        "web_searches": props.get("$ai_web_search_count"),
    }


def screens(event_name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """Everything above for one event: what the Generations, Tools, Errors and Cost
    views show of it."""
    return {
        "tools": tools_called(event_name, props),
        "cost": priced(props),
        "error": error_state(props),
        "model": (props.get("$ai_model"), props.get("$ai_provider")),
        "params": core_model_params(props),
        "stop_reason": props.get("$ai_stop_reason"),
    }
