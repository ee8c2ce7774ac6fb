"""An OpenAI-style chat loop with tools, traced with ``traced`` and ``generation``.

The "model" is a local function with the shape of a chat-completions API, so
the example needs no network; swap in a real client and nothing else changes.

    python examples/chat_loop.py
"""

from __future__ import annotations

import json
from typing import Any

import posthog_logging as pl
from example_support import setup

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount between currencies",
            "parameters": {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
            },
        },
    }
]


@pl.traced(type="tool_call")
def convert_currency(amount: float, to: str) -> dict[str, Any]:
    return {"amount": round(amount * 0.92, 2), "currency": to}


def chat_completion(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A fake ``client.chat.completions.create`` answer (OpenAI's response shape)."""
    usage: dict[str, Any]
    if messages[-1]["role"] == "user":
        call = {
            "id": "call_9",
            "function": {
                "name": "convert_currency",
                "arguments": json.dumps({"amount": 100, "to": "EUR"}),
            },
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        usage = {"prompt_tokens": 55, "completion_tokens": 21}
    else:
        result = json.loads(messages[-1]["content"])
        message = {"role": "assistant", "content": f"That is {result['amount']} EUR."}
        usage = {
            "prompt_tokens": 80,
            "completion_tokens": 9,
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    return {"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage}


def chat(user_text: str, user_id: str) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": user_text}]
    with pl.span(
        "chat turn", type="agent_run", input=user_text, metadata={"userId": user_id}
    ) as turn:
        while True:
            with pl.generation(
                "chat.completions",
                model="gpt-4o",
                provider="openai",
                input=list(messages),
                tools=TOOLS,
            ) as llm:
                response = chat_completion(messages)
                choice = response["choices"][0]
                llm.update(
                    output=[choice["message"]],
                    usage=response["usage"],
                    attributes={"finishReason": choice["finish_reason"]},
                )
            message = choice["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                turn.update(output=message["content"])
                return str(message["content"])
            for call in message["tool_calls"]:
                result = convert_currency(**json.loads(call["function"]["arguments"]))
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
                )


def main() -> None:
    setup()
    print(chat("How much is 100 USD in EUR?", user_id="user-42"))


if __name__ == "__main__":
    main()
