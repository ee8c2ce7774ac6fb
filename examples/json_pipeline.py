"""Keep an existing JSON-lines log pipeline and add PostHog beside it.

The application already writes JSON logs with python-json-logger to a file
(or stdout, for a collector).  Spans now go to both: the file gets each span
as one JSON object per line (``SpanJsonFormatter``), PostHog gets the events.
To deliver such a file from another process instead (a log shipper's side), pipe a
copy of its lines to ``posthog-logging send -`` (docs/pipelines.md); the application's
own log file stays where it is.

    python examples/json_pipeline.py [app.jsonl]
"""

from __future__ import annotations

import logging
import logging.config
import sys

import posthog_logging as pl
from example_support import logging_config, posthog_target


def main() -> None:
    log_path = sys.argv[1] if len(sys.argv) > 1 else "app.jsonl"
    api_key, host = posthog_target()
    config = logging_config(api_key, host)
    # The pipeline the application had: JSON lines to a file, for everything.
    config["formatters"]["json"] = {
        "()": "posthog_logging.SpanJsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    }
    config["handlers"]["json_file"] = {
        "class": "logging.FileHandler",
        "filename": log_path,
        "formatter": "json",
    }
    config["root"] = {"handlers": ["json_file"], "level": "INFO"}
    # Spans: to PostHog and, by propagating, to the JSON file as well.
    config["loggers"]["posthog_logging.spans"]["propagate"] = True
    logging.config.dictConfig(config)

    app = logging.getLogger("shop.checkout")
    app.info("checkout started", extra={"cart_id": "c-42"})
    agent = pl.span("recommend products", type="agent_run", metadata={"userId": "u-7"})
    with (
        agent,
        pl.generation(
            "llm",
            model="claude-3-5-haiku",
            provider="anthropic",
            input="Suggest one product for a hiker.",
        ) as llm,
    ):
        llm.update(
            output="A headlamp.",
            usage={"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 0},
        )
    app.info("checkout done", extra={"cart_id": "c-42"})
    print(f"JSON lines written to {log_path}")


if __name__ == "__main__":
    main()
