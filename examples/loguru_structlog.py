"""A program that logs with loguru and structlog sends its spans through the same handler.

Spans here are Mastra-shaped dicts, as a framework already produces them: loguru
carries them as bound data (``logger.bind(span=...)``), structlog as keyword
arguments rendered to ``extra`` by ``render_to_log_kwargs``.  Neither needs
anything but the handler.

    python examples/loguru_structlog.py
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import structlog
from loguru import logger

import posthog_logging as pl
from example_support import posthog_target

QUESTION = "Where is my parcel?"
ANSWER = "It left the depot this morning and arrives tomorrow."


def main() -> None:
    api_key, host = posthog_target()
    handler = pl.PosthogLogHandler(api_key=api_key, host=host)

    # loguru: the handler is a standard-library sink; bound data arrives in record.extra.
    logger.remove()  # no console sink: this example prints the trace instead
    logger.add(handler, format="{message}", level="INFO")

    # structlog: through standard logging, the event's keys passed as `extra`.
    feedback_logger = logging.getLogger("support_bot.feedback")
    feedback_logger.addHandler(handler)
    feedback_logger.setLevel(logging.INFO)
    feedback_logger.propagate = False
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )

    trace_id, root_id = secrets.token_hex(16), secrets.token_hex(8)
    root: dict[str, Any] = {
        "id": root_id,
        "traceId": trace_id,
        "name": "support bot",
        "type": "agent_run",
        "startTime": time.time(),
        "isRootSpan": True,
        "input": QUESTION,
        "metadata": {"userId": "u-9", "sessionId": "chat-3"},
    }
    logger.bind(span=root, span_event="span_started").info("agent start")
    started = time.time()
    generation = {
        "id": secrets.token_hex(8),
        "traceId": trace_id,
        "parentSpanId": root_id,
        "name": "llm",
        "type": "model_generation",
        "startTime": started,
        "endTime": started + 0.42,
        "input": [{"role": "user", "content": QUESTION}],
        "output": {"text": ANSWER},
        "attributes": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "usage": {"inputTokens": 14, "outputTokens": 11},
        },
    }
    logger.info("llm call", span=generation)  # loguru's keyword form binds it too
    logger.bind(span={**root, "endTime": time.time(), "output": ANSWER}).info("agent done")

    structlog.get_logger("support_bot.feedback").info(
        "thumbs up",
        feedback={"traceId": trace_id, "feedbackType": "thumbs", "value": 1, "userId": "u-9"},
    )
    print(ANSWER)


if __name__ == "__main__":
    main()
