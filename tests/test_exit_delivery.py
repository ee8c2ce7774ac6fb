"""Delivery at exit, checked in real subprocesses against a real capture server.

Python runs atexit hooks last-registered-first; the handler must own the
drain order so that a program that simply returns loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY

pytestmark = pytest.mark.slow  # each test runs a program in a subprocess

SPANS = 2000

PROGRAM_HEAD = """
import logging, logging.config, os, sys
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "posthog": {
            FORM: "posthog_logging.PosthogLogHandler",
            "host": os.environ["TEST_HOST"],
            "flush_at": 50,
        },
    },
    LOGGER_SECTION,
})
log = logging.getLogger("app.ai")

def span(i, trace="0" * 32):
    return {
        "id": f"{i:016x}", "traceId": trace, "parentSpanId": "f" * 16,
        "name": f"tool {i}", "type": "tool_call",
        "startTime": 1735689600.0, "endTime": 1735689601.5,
        "input": {"i": i}, "metadata": {"userId": "u1"},
    }
"""

APP_LOGGER = '"loggers": {"app": {"handlers": ["posthog"], "level": "INFO"}}'
ROOT_DEBUG = '"root": {"handlers": ["posthog"], "level": "DEBUG"}'


def run_program(
    server: CaptureServer, body: str, *, form: str = '"()"', loggers: str = APP_LOGGER
) -> subprocess.CompletedProcess[str]:
    source = PROGRAM_HEAD.replace("FORM", form).replace("LOGGER_SECTION", loggers)
    source += textwrap.dedent(body)
    env = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, TEST_HOST=server.url)
    return subprocess.run(
        [sys.executable, "-c", source],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_all_delivered(server: CaptureServer, count: int) -> None:
    events = server.wait_for_events(count, timeout=10)
    span_ids = sorted(event["properties"]["$ai_span_id"] for event in events)
    assert span_ids == sorted(f"{i:016x}" for i in range(count))


@pytest.mark.parametrize("form", ['"()"', '"class"'])
def test_program_that_just_returns_delivers_everything(
    capture_server: CaptureServer, form: str
) -> None:
    result = run_program(
        capture_server,
        f"""
        for i in range({SPANS}):
            log.info("tool", extra={{"span": span(i)}})
    """,
        form=form,
    )
    assert result.returncode == 0, result.stderr
    assert_all_delivered(capture_server, SPANS)
    assert result.stderr == ""


def test_explicit_logging_shutdown_delivers_everything(capture_server: CaptureServer) -> None:
    result = run_program(
        capture_server,
        f"""
        for i in range({SPANS}):
            log.info("tool", extra={{"span": span(i)}})
        logging.shutdown()
    """,
    )
    assert result.returncode == 0, result.stderr
    assert_all_delivered(capture_server, SPANS)


def test_posthog_client_created_by_the_app_does_not_steal_the_exit(
    capture_server: CaptureServer,
) -> None:
    # The app also uses a posthog.Client: its atexit hook runs before logging.shutdown.
    result = run_program(
        capture_server,
        f"""
        import posthog
        client = posthog.Client("{DUMMY_KEY}", host=os.environ["TEST_HOST"])
        for i in range({SPANS}):
            log.info("tool", extra={{"span": span(i)}})
    """,
    )
    assert result.returncode == 0, result.stderr
    assert_all_delivered(capture_server, SPANS)


def test_root_logger_at_debug_does_not_feed_on_its_transport(
    capture_server: CaptureServer,
) -> None:
    result = run_program(
        capture_server,
        f"""
        logging.getLogger("posthog").setLevel(logging.DEBUG)
        for i in range({SPANS}):
            log.info("tool", extra={{"span": span(i)}})
            if i % 500 == 0:
                logging.getLogger("noise").debug("plain record %d", i)
        handler = logging.getLogger().handlers[0]
        handler.flush()
        stats = handler.stats()
        print(stats["sent"], stats["dropped"], stats["ignored"] > 0)
    """,
        loggers=ROOT_DEBUG,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(SPANS), "{}", "True"]
    assert_all_delivered(capture_server, SPANS)
    assert len(capture_server.events) == SPANS


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_forked_child_delivers_its_own_spans_and_parent_sends_its_own_once(
    capture_server: CaptureServer,
) -> None:
    result = run_program(
        capture_server,
        f"""
        half = {SPANS} // 2
        for i in range(half):
            log.info("tool", extra={{"span": span(i)}})
        pid = os.fork()
        if pid == 0:
            for i in range(half, {SPANS}):
                log.info("tool", extra={{"span": span(i)}})
            sys.exit(0)   # the child returns normally too: atexit runs logging.shutdown
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    """,
    )
    assert result.returncode == 0, result.stderr
    assert_all_delivered(capture_server, SPANS)
    assert len(capture_server.events) == SPANS  # nothing sent twice


def test_spans_logged_while_interpreter_exits_are_still_delivered(
    capture_server: CaptureServer,
) -> None:
    # The first span arrives from an atexit hook, when no new thread may start.
    result = run_program(
        capture_server,
        """
        import atexit
        def late():
            for i in range(10):
                log.info("tool", extra={"span": span(i)})
        atexit.register(late)
    """,
    )
    assert result.returncode == 0, result.stderr
    assert_all_delivered(capture_server, 10)


def test_a_handler_that_failed_to_configure_leaves_exit_clean() -> None:
    source = textwrap.dedent("""
        import logging
        from posthog_logging import PosthogLogHandler
        try:
            PosthogLogHandler(api_key="phc_x", host="http://127.0.0.1:9", flush_at=0)
        except ValueError as error:
            print("refused:", error)
        logging.shutdown()
    """)
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("refused: flush_at must be at least 1")
    assert result.stderr == ""
