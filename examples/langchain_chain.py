"""A LangChain chain traced by posthog's ``CallbackHandler``, delivered through logging.

python examples/langchain_chain.py

LangChain's handler reports the chain run as a trace of its own; inside
``pl.span`` that trace becomes a span of the enclosing trace, with the chat
model's generation under it.  ``GenericFakeChatModel`` stands in for a real one.
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from posthog.ai.langchain import CallbackHandler

import posthog_logging as pl
from example_support import setup


def main() -> None:
    setup()
    reply = AIMessage(
        "Logging gives you delivery guarantees for free.",
        usage_metadata={"input_tokens": 21, "output_tokens": 8, "total_tokens": 29},
        response_metadata={"model_name": "fake-gpt", "finish_reason": "stop"},
    )
    # What a provider's chat model reports about itself (the handler reads it).
    model = GenericFakeChatModel(messages=iter([reply])).with_config(
        metadata={"ls_model_name": "gpt-4o-mini", "ls_provider": "openai"}
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in one sentence."), ("user", "{question}")]
    )
    chain = prompt | model | StrOutputParser()
    callbacks = CallbackHandler(client=pl.posthog_client())
    with pl.span("support bot", type="agent_run", metadata={"userId": "u-lc"}):
        answer = chain.invoke(
            {"question": "Why route traces through logging?"}, config={"callbacks": [callbacks]}
        )
    print(answer)


if __name__ == "__main__":
    main()
