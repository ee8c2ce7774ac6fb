"""Model APIs answered in-process, so the wrapper examples run with no API key.

Each function returns an HTTP client for the provider's SDK (its
``http_client=`` argument) whose transport is an ``httpx.MockTransport``.  The
SDK, and the ``posthog.ai`` wrapper around it, run for real; only the HTTP
answer is canned.  With a real key, drop the ``http_client`` argument.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import httpx

#: One scripted OpenAI answer: text, or tool calls as (name, arguments) pairs.
OpenAIReply = str | Sequence[tuple[str, dict[str, Any]]]


def openai_http_client(
    replies: Sequence[OpenAIReply], *, first_token_delay: float = 0.0
) -> httpx.Client:
    """An OpenAI client's ``http_client`` answering with ``replies`` in turn."""
    return httpx.Client(transport=openai_transport(replies, first_token_delay=first_token_delay))


def openai_transport(
    replies: Sequence[OpenAIReply], *, first_token_delay: float = 0.0
) -> httpx.MockTransport:
    """Answers ``/chat/completions`` with ``replies`` in turn (streamed when asked),
    and ``/embeddings`` with a small vector per input.

    Works for ``httpx.AsyncClient`` too, except for streams (their body is sync).
    """
    script = iter(replies)

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path.endswith("/embeddings"):
            return httpx.Response(200, json=_embeddings(body))
        reply = next(script)
        usage = {
            "prompt_tokens": 10 * len(body["messages"]),
            "completion_tokens": 7,
            "total_tokens": 10 * len(body["messages"]) + 7,
            "completion_tokens_details": {"reasoning_tokens": 0},
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if body.get("stream"):
            assert isinstance(reply, str), "only text is streamed here"
            stream = _openai_chunks(body["model"], reply, usage, first_token_delay)
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=stream
            )
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(reply, str):
            message["content"] = reply
            finish = "stop"
        else:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for index, (name, arguments) in enumerate(reply)
            ]
            finish = "tool_calls"
        completion = {
            "id": "chatcmpl-example",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return httpx.Response(200, json=completion)

    return httpx.MockTransport(answer)


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return {
        "object": "list",
        "model": body["model"],
        "data": [
            {"object": "embedding", "index": index, "embedding": [0.1, 0.2, 0.3]}
            for index in range(len(inputs))
        ],
        "usage": {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)},
    }


def _openai_chunks(
    model: str, text: str, usage: dict[str, Any], first_token_delay: float
) -> Iterator[bytes]:
    """Server-sent events of a streamed completion, one word per chunk."""

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        body = {
            "id": "chatcmpl-example",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta else [],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    time.sleep(first_token_delay)
    yield chunk({"role": "assistant", "content": ""}, None)
    for word in text.split(" "):
        yield chunk({"content": word + " "}, None)
    yield chunk({"content": ""}, "stop")
    yield chunk({}, None, usage=usage)
    yield b"data: [DONE]\n\n"


def _anthropic_httpx() -> ModuleType:
    """The httpx package the installed anthropic SDK takes clients of (httpx2 since 2.x)."""
    if hasattr(importlib.import_module("anthropic._base_client"), "httpx2"):
        return importlib.import_module("httpx2")
    return httpx


def anthropic_http_client(replies: Sequence[str]) -> Any:
    """Answers ``/v1/messages`` with ``replies`` in turn."""
    http = _anthropic_httpx()
    script = iter(replies)

    def answer(request: Any) -> Any:
        body = json.loads(request.content)
        message = {
            "id": "msg_example",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": next(script)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 25,
                "output_tokens": 9,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 0,
            },
        }
        return http.Response(200, json=message)

    return http.Client(transport=http.MockTransport(answer))


def gemini_transport(replies: Sequence[str]) -> httpx.MockTransport:
    """A google-genai client's transport (``HttpOptions(client_args={"transport": ...})``)
    answering ``:generateContent`` with ``replies`` in turn."""
    script = iter(replies)

    def answer(request: httpx.Request) -> httpx.Response:
        model = request.url.path.rsplit("/", 1)[-1].split(":", 1)[0]
        candidate = {
            "content": {"role": "model", "parts": [{"text": next(script)}]},
            "finishReason": "STOP",
        }
        usage = {
            "promptTokenCount": 12,
            "candidatesTokenCount": 4,
            "totalTokenCount": 16,
            "cachedContentTokenCount": 2,
        }
        body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(answer)
