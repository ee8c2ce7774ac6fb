"""The ``posthog_events`` fixture in a user's project (through ``pytester``), and ``capture()``.

The sample projects run in a pytest subprocess, as a user's suite would: the
plugin is found through the installed ``pytest11`` entry point, and the
application configures its handler with ``dictConfig`` at import, before any
fixture runs.
"""

from __future__ import annotations

import logging
import logging.config
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.testing import capture

from .conftest import DUMMY_KEY, span_logger

AGENT_APP = """
import logging.config
import os

import posthog_logging as pl

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "posthog": {"()": "posthog_logging.PosthogLogHandler", "host": os.environ["APP_HOST"]}
        },
        "loggers": {
            "posthog_logging.spans": {"handlers": ["posthog"], "level": "INFO", "propagate": False}
        },
    }
)


def run_agent(question):
    with pl.span("agent run", type="agent_run", input=question, metadata={"userId": "u1"}):
        for step in range(2):
            with pl.generation(
                f"llm: step {step}", model="gpt-4o-mini", provider="openai", input=question
            ) as llm:
                llm.update(output="ok", usage={"inputTokens": 10, "outputTokens": 5})
        with pl.span("tool: get_weather", type="tool_call", input={"city": "Paris"}):
            pass
"""

USER_TESTS = """
import threading

from agent_app import run_agent


def test_generations(posthog_events):
    run_agent("What's the weather?")
    assert len(posthog_events.generations(model="gpt-4o-mini")) == 2, posthog_events.tree()


def test_the_tree_explains_a_failure(posthog_events):
    run_agent("What's the weather?")
    assert posthog_events.spans("tool: search"), posthog_events.tree()


def test_each_test_starts_empty_and_starts_no_thread(posthog_events):
    assert len(posthog_events) == 0
    run_agent("again")
    (trace,) = posthog_events.traces().values()
    assert [e["event"] for e in trace][-1] == "$ai_trace"
    assert threading.active_count() == 1, threading.enumerate()
"""


@pytest.mark.slow
def test_a_users_suite_asserts_on_its_agents_generations(
    pytester: pytest.Pytester, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("APP_HOST", capture_server.url)
    pytester.makepyfile(agent_app=AGENT_APP, test_agent=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: trace *",
            "*└── trace  agent run*",
            "*├── generation  llm: step 0  ?gpt-4o-mini?  *tokens 10/5",  # [ ] is a class
            "*└── span  tool: get_weather*",
        ]
    )
    # Nothing left the process, not even at exit: the records never reached the queue.
    assert capture_server.requests == []


@pytest.mark.slow
def test_the_plugin_leaves_a_suite_that_does_not_use_it_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
import sys


def test_untouched(request):
    assert request.config.pluginmanager.hasplugin("posthog_logging")
    assert [name for name in sys.modules if name.startswith("posthog_logging.")] == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


# ------------------------------------------------------------------ capture()


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """``test.capture.app`` with a PosthogLogHandler configured by dictConfig, pointed
    nowhere reachable: nothing may be sent."""
    posthog = {
        "()": "posthog_logging.PosthogLogHandler",
        "api_key": DUMMY_KEY,
        "host": "http://127.0.0.1:9",
        "privacy_mode": True,
    }
    app = {"handlers": ["posthog"], "level": "INFO", "propagate": False}
    keep = {"version": 1, "disable_existing_loggers": False}
    logging.config.dictConfig(
        {**keep, "handlers": {"posthog": posthog}, "loggers": {"test.capture.app": app}}
    )
    logger = logging.getLogger("test.capture.app")
    yield logger
    for handler in logger.handlers:
        handler.close()
    logger.handlers.clear()


def tool_span(span_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": span_id,
        "traceId": "d" * 32,
        "parentSpanId": "e" * 16,
        "name": f"tool {span_id}",
        "type": "tool_call",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:01.000Z",
        "input": {"secret": "prompt text"},
        **fields,
    }


def test_capture_maps_with_the_handlers_own_options_on_the_callers_thread(
    app_logger: logging.Logger,
) -> None:
    threads = threading.active_count()
    with capture() as events:
        app_logger.info("tool", extra={"span": tool_span("1" * 16)})
        app_logger.info("not a span")  # ignored, as the handler ignores it
        app_logger.info("broken", extra={"span": {"id": "x"}})  # rejected: counted
        (event,) = events  # there as soon as the call returned
    assert (
        event["event"] == "$ai_span" and event["properties"]["$ai_span_name"] == "tool " + "1" * 16
    )
    assert "$ai_input_state" not in event["properties"]  # the handler's privacy_mode
    assert events.dropped == {"invalid_span": 1}
    assert threading.active_count() == threads  # no listener, no sender started
    (handler,) = [h for h in app_logger.handlers if isinstance(h, PosthogLogHandler)]
    assert handler.stats()["received"] == 0  # its queue never saw them


def test_capture_takes_records_of_a_handler_without_an_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    handler = PosthogLogHandler()
    assert handler.disabled
    logger = span_logger("test.capture.disabled", handler)
    with capture() as events, pl.span("agent", type="agent_run", logger=logger):
        with pl.generation("llm", model="m1", logger=logger):
            pass
        with pl.generation("llm", model="m2", logger=logger):
            pass
    assert [g["properties"]["$ai_model"] for g in events.generations()] == ["m1", "m2"]
    assert [s["event"] for s in events.spans("llm")] == ["$ai_generation"] * 2
    assert len(events.generations(model="m2")) == 1
    assert events.trace() == events.events
    logger.info("after", extra={"span": tool_span("2" * 16)})
    assert len(events) == 3  # the capture ended: a disabled handler drops it again


def test_trace_fails_with_the_trees_when_it_is_ambiguous(app_logger: logging.Logger) -> None:
    with capture() as events:
        app_logger.info("tool", extra={"span": tool_span("1" * 16)})
        app_logger.info("tool", extra={"span": tool_span("2" * 16, traceId="f" * 32)})
    with pytest.raises(AssertionError, match=r"expected exactly one trace; captured 2:\ntrace d"):
        events.trace()
    assert events.trace("f" * 32)[0]["properties"]["$ai_span_id"] == "2" * 16
    assert events.tree().count("└── span  tool") == 2
    events.clear()
    assert (len(events), events.tree()) == (0, "(no events captured)")


def test_nested_captures_restore_the_outer_one(app_logger: logging.Logger) -> None:
    with capture() as outer:
        with capture() as inner:
            app_logger.info("tool", extra={"span": tool_span("1" * 16)})
        app_logger.info("tool", extra={"span": tool_span("2" * 16)})
    assert (len(inner), len(outer)) == (1, 1)
    assert PosthogLogHandler.record_sink is None
