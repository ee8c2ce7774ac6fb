"""The peer comparison's plumbing: mocked provider APIs, SDK clients, and both sides.

``openai_api`` / ``anthropic_api`` answer the SDKs in-process
(``httpx.MockTransport``); :class:`Harness` holds the ``posthog.ai`` wrapper's
``posthog.Client`` with the capture server it sends to, and our handler with its
own, so a test can make one call through each and compare the events.
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
from posthog.client import Client

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger

#: The HTTP library the installed anthropic SDK takes: httpx2 (same API) from 2.x, else httpx.
anthropic_httpx: types.ModuleType
try:
    import httpx2 as anthropic_httpx
except ImportError:  # pragma: no cover - depends on the installed anthropic
    anthropic_httpx = httpx

OPENAI_BASE = "http://mock.openai/v1/"
ANTHROPIC_BASE = "http://mock.anthropic"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


# ------------------------------------------------------ the mocked provider APIs


def openai_api(request: Any) -> Any:
    body = json.loads(request.content)
    if request.url.path.endswith("/embeddings"):
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": body["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            },
        )
    if body["model"] == "overloaded-model":
        error = {"message": "Rate limit reached", "type": "rate_limit", "code": "rate_limit"}
        return httpx.Response(429, json={"error": error})
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Sunny in Paris"},
                }
            ],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        },
    )


def anthropic_api(request: Any) -> Any:
    body = json.loads(request.content)
    return anthropic_httpx.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Sunny in Paris"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 30,
                "output_tokens": 5,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 4,
            },
        },
    )


def openai_client(
    cls: Any = openai.OpenAI, api: Callable[[Any], Any] = openai_api, **kwargs: Any
) -> Any:
    """An OpenAI client (or a wrapper class) whose HTTP ``api`` answers in-process."""
    transport = httpx.MockTransport(api)
    return cls(
        api_key="sk-test",
        base_url=OPENAI_BASE,
        http_client=httpx.Client(transport=transport),
        max_retries=0,
        **kwargs,
    )


def anthropic_client(
    cls: Any = anthropic.Anthropic, api: Callable[[Any], Any] = anthropic_api, **kwargs: Any
) -> Any:
    """An Anthropic client (or a wrapper class) whose HTTP ``api`` answers in-process."""
    transport = anthropic_httpx.MockTransport(api)
    return cls(
        api_key="sk-ant-test",
        base_url=ANTHROPIC_BASE,
        http_client=anthropic_httpx.Client(transport=transport),
        max_retries=0,
        **kwargs,
    )


@dataclass
class Pair:
    peer: dict[str, Any]
    ours: dict[str, Any]


@dataclass
class Harness:
    peer_client: Client
    peer_server: CaptureServer
    handler: PosthogLogHandler
    logger: Any
    server: CaptureServer

    def pair(self, event: str) -> Pair:
        self.peer_client.flush()
        self.handler.flush()
        (peer,) = (e for e in self.peer_server.events if e["event"] == event)
        (ours,) = (e for e in self.server.events if e["event"] == event)
        return Pair(peer["properties"], ours["properties"])


@contextlib.contextmanager
def open_harness(capture_server: CaptureServer, logger_name: str) -> Iterator[Harness]:
    """The peer's client and server, and our handler (``capture_exceptions=True``) on
    ``logger_name`` sending to ``capture_server``."""
    with CaptureServer() as peer_server:
        peer_client = Client(DUMMY_KEY, host=peer_server.url, sync_mode=True)
        handler = PosthogLogHandler(
            api_key=DUMMY_KEY, host=capture_server.url, capture_exceptions=True
        )
        logger = span_logger(logger_name, handler)
        try:
            yield Harness(peer_client, peer_server, handler, logger, capture_server)
        finally:
            # A sync_mode client sent each event inside capture(): nothing to shut down
            # (and posthog 6.7's shutdown() fails on a client that has no consumers).
            handler.close()
